"""An offline stand-in for the AceData Cloud Veo API, with fault injection and counters.

Why it exists: the provider promises exactly-once paid submissions and survives 429/5xx,
timeouts, lost answers and late/duplicate/lost callbacks. Those promises can only be tested
against a server that misbehaves on demand and counts what it was asked to do. It is an
independent implementation of the vendor's contract (``shared/veo-api``): it shares only the
request models with the provider (so both refuse the same bodies) and never imports the hook.

Run it on its own with ``python -m veo_provider.testing.emulator --port 8089``; drive it from
tests in-process (``VeoEmulator``) or over HTTP (``/_emulator/...`` admin endpoints).

Behaviour worth knowing (the contract the hook is tested against):

* Auth: ``authorization: Bearer <token>``; missing or wrong → 401 ``invalid_token``.
* Bad JSON or a body refused by ``veo_provider.models.build_request`` → 400 ``bad_request``.
  A 1080p fetch (``get1080p``/``get_1080p``) whose ``video_id`` is not a succeeded video of this
  emulator → 400 ``bad_request`` (so is any ``video_id`` with ``strict_video_ids``), and a video
  made by ``/veo/extend`` sent to reshoot/objects → 400.
* Unknown path or method → 404 ``no_api``. Unknown task id in ``/veo/tasks`` retrieve → 404
  ``not_found`` (batch retrieval simply omits unknown ids).
* Modes: no ``callback_url`` and no ``async`` → the request is held until the job is done; else
  ``{"task_id"}`` at once, and with a ``callback_url`` the final JSON is POSTed there.
* A failed job answers (sync), calls back and shows in ``/veo/tasks`` as
  ``{"success": false, "task_id", "trace_id", "error": {"code", "message"}}``; the sync answer's
  HTTP status is 200 unless the ``fail_jobs`` fault says otherwise.
* ``drop_response`` creates the job and then closes the connection WITHOUT sending any byte
  of an answer (the client sees "server disconnected without sending a response", an
  ``httpx.RemoteProtocolError``). It relies on uvicorn closing the transport when the ASGI
  app returns a value; under another server the client gets a 500 instead. For "the job
  exists but the answer is a 500/504", use ``server_error``/``gateway_timeout`` with
  ``after_create``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from veo_provider.models import GET_1080P, VeoRequestError, build_request

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = [
    "CallbackDelayFault",
    "CallbackDuplicateFault",
    "CallbackLoseFault",
    "CallbackSink",
    "DelayFault",
    "DownloadCutFault",
    "DropResponseFault",
    "EmulatorConfig",
    "EmulatorState",
    "ErrorFault",
    "FailJobsFault",
    "Faults",
    "Job",
    "ModerationFault",
    "RateLimitFault",
    "ReceivedCallback",
    "UsedUpFault",
    "VeoEmulator",
    "body_key",
    "create_app",
    "iter_mp4",
    "main",
    "mp4_length",
    "sample_mp4",
]

log = logging.getLogger(__name__)

#: Submission endpoints (name as in ``veo_provider.models.ENDPOINTS``), all ``POST /veo/<name>``.
SUBMIT_ENDPOINTS = ("videos", "upsample", "extend", "reshoot", "objects")
TASKS_PATH = "/veo/tasks"
ADMIN_PREFIX = "/_emulator"
#: Body keys that do not change what is generated (so they do not make a body "new").
DELIVERY_KEYS = ("callback_url", "async")
_CHUNK = 64 * 1024
_DROP_MARKER = "veo-emulator: drop_response (connection closed on purpose)"


# ------------------------------------------------------------------------------------ faults


class _Rule(BaseModel):
    """One fault: fires for the next ``times`` matching requests (``None``: until cleared)."""

    model_config = ConfigDict(extra="forbid")

    times: int | None = Field(default=1, ge=0)
    #: ``/veo/videos`` (or ``videos``) limits the fault to that path; ``None``/``"*"``: all paths.
    path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # ``{"rate_limit": 2}`` is the same as ``{"rate_limit": {"times": 2}}``.
        if isinstance(data, int) and not isinstance(data, bool):
            return {"times": data}
        return data

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is None or v.strip() in ("", "*", "all"):
            return None
        v = v.strip()
        return v if v.startswith("/") else f"/veo/{v}"


class RateLimitFault(_Rule):
    """429 ``too_many_requests`` with ``Retry-After`` (no job is created)."""

    retry_after: int = Field(default=1, ge=0)
    message: str = "Too many requests, you have exceeded the rate limit."


class ErrorFault(_Rule):
    """500 ``api_error`` or 504 ``timeout``; ``after_create``: the job exists all the same."""

    after_create: bool = False
    message: str | None = None


class DelayFault(_Rule):
    """Slow answer: by default the job is created first, then the answer waits ``seconds``.

    ``before=True`` waits before anything (auth, validation, job); if the client has gone away
    by then, the request is abandoned without creating a job (``requests_abandoned``).
    """

    seconds: float = Field(ge=0)
    before: bool = False


class DropResponseFault(_Rule):
    """Create the job, then close the connection without answering."""


class FailJobsFault(_Rule):
    """The next jobs end ``failed`` (answer, callback and task record carry the error)."""

    code: str = "generation_failed"
    message: str = "Video generation failed: the upstream model returned no video."
    #: HTTP status of a synchronous answer for such a job.
    http_status: int = Field(default=200, ge=100, le=599)


class ModerationFault(_Rule):
    """403 ``forbidden`` for prompts containing one of ``words`` (case-insensitive)."""

    times: int | None = Field(default=None, ge=0)
    words: list[str] = Field(min_length=1)
    message: str = "The prompt was refused by content moderation."

    @model_validator(mode="before")
    @classmethod
    def _words_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"words": [data]}
        if isinstance(data, list):
            return {"words": data}
        return data


class UsedUpFault(_Rule):
    """403 ``used_up``: the account's balance is exhausted (no job is created)."""

    message: str = "Your balance is used up, please top up."


class CallbackLoseFault(_Rule):
    """The next callback jobs never call back (``callbacks_lost``)."""


class CallbackDuplicateFault(_Rule):
    """The next callback jobs call back ``copies`` times."""

    copies: int = Field(default=2, ge=2)


class CallbackDelayFault(_Rule):
    """The next callback jobs call back ``seconds`` after the job is done."""

    seconds: float = Field(ge=0)


class DownloadCutFault(_Rule):
    """The next video downloads close the connection after ``after_bytes`` (default: half)."""

    after_bytes: int | None = Field(default=None, ge=0)


class Faults(BaseModel):
    """Every fault setting. Setting one (in-process or over HTTP) replaces that key only."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: RateLimitFault | None = None
    server_error: ErrorFault | None = None
    gateway_timeout: ErrorFault | None = None
    slow_response: DelayFault | None = None
    drop_response: DropResponseFault | None = None
    fail_jobs: FailJobsFault | None = None
    moderation: ModerationFault | None = None
    used_up: UsedUpFault | None = None
    callback_lose: CallbackLoseFault | None = None
    callback_duplicate: CallbackDuplicateFault | None = None
    callback_delay: CallbackDelayFault | None = None
    download_cut: DownloadCutFault | None = None
    #: Size in bytes of every served video when the URL has no ``?size=`` (persistent).
    video_size: int | None = Field(default=None, ge=0)
    #: Generation time of jobs created from now on, instead of the config's (persistent).
    generation_seconds: float | None = Field(default=None, ge=0)


FAULT_NAMES: tuple[str, ...] = tuple(Faults.model_fields)


# ------------------------------------------------------------------------------------ config


@dataclasses.dataclass
class EmulatorConfig:
    """How an emulator behaves when nothing is injected; faults are set on top at run time."""

    #: Accepted bearer token(s).
    token: str | Sequence[str] = "test-token"
    #: Time from submission to a finished job (0: done at once, for fast tests).
    generation_seconds: float = 3.0
    #: Share of ``generation_seconds`` during which a job is pending (no ``response``).
    pending_fraction: float = 0.2
    #: Base of ``video_url``; default: the URL the request came in on.
    public_url: str | None = None
    #: Timeout of one callback POST, extra attempts on a non-2xx/transport error, and the pause.
    callback_timeout: float = 5.0
    callback_retries: int = 0
    callback_retry_delay: float = 0.5
    #: Require every ``video_id`` (not only the 1080p fetch's) to be a video of this emulator.
    strict_video_ids: bool = False
    #: Faults active from the start and after every reset (same shape as ``Faults``).
    faults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Where ``VeoEmulator`` listens (port 0: a free port).
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.pending_fraction <= 1:
            raise ValueError(f"pending_fraction must be within [0, 1] (got {self.pending_fraction})")
        if self.generation_seconds < 0:
            raise ValueError(f"generation_seconds must be >= 0 (got {self.generation_seconds})")
        Faults.model_validate(dict(self.faults))

    @property
    def tokens(self) -> tuple[str, ...]:
        return (self.token,) if isinstance(self.token, str) else tuple(self.token)

    def describe(self) -> dict[str, Any]:
        """The config without tokens, for ``/_emulator/stats``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "token"}
        out["faults"] = Faults.model_validate(dict(self.faults)).model_dump(exclude_none=True)
        return out


# -------------------------------------------------------------------------------------- jobs


def body_key(path: str, body: Mapping[str, Any]) -> str:
    """Identity of "the same paid request": path + canonical JSON without delivery keys.

    A resubmission with a new callback URL (or async flag) is still a duplicate, which is
    exactly what exactly-once tests must catch.
    """
    kept = {k: v for k, v in body.items() if k not in DELIVERY_KEYS}
    return f"{path} {json.dumps(kept, sort_keys=True, separators=(',', ':'), ensure_ascii=False)}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


@dataclasses.dataclass
class Job:
    """One accepted submission; its state follows from the clock, so it needs no worker."""

    task_id: str
    trace_id: str
    video_id: str
    path: str
    type: str
    request: dict[str, Any]
    body_key: str
    mode: Literal["sync", "async", "callback"]
    callback_url: str | None
    created_at: float
    generation_seconds: float
    pending_seconds: float
    video_url: str
    epoch: int
    failure: FailJobsFault | None = None
    source_video_id: str | None = None
    callback_lose: bool = False
    callback_delay: float = 0.0
    callback_copies: int = 1
    callbacks: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def finished_at(self) -> float:
        return self.created_at + self.generation_seconds

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.finished_at - (time.time() if now is None else now))

    def state(self, now: float | None = None) -> Literal["pending", "running", "succeeded", "failed"]:
        now = time.time() if now is None else now
        if now >= self.finished_at:
            return "failed" if self.failure else "succeeded"
        return "pending" if now < self.created_at + self.pending_seconds else "running"

    def final_body(self) -> dict[str, Any]:
        """The sync answer = the callback body = the finished task's ``response``."""
        if self.failure:
            return {
                "success": False,
                "task_id": self.task_id,
                "trace_id": self.trace_id,
                "error": {"code": self.failure.code, "message": self.failure.message},
            }
        return {
            "success": True,
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "data": [
                {
                    "id": self.video_id,
                    "video_url": self.video_url,
                    "created_at": _stamp(self.created_at),
                    "complete_at": _stamp(self.finished_at),
                    "state": "succeeded",
                }
            ],
        }

    def record(self, now: float | None = None) -> dict[str, Any]:
        """The ``/veo/tasks`` record: ``response`` absent while pending."""
        now = time.time() if now is None else now
        state = self.state(now)
        rec: dict[str, Any] = {
            "id": self.task_id,
            "trace_id": self.trace_id,
            "type": self.type,
            "created_at": self.created_at,
            "started_at": self.created_at,
            "request": self.request,
        }
        if state == "running":
            rec["response"] = {
                "success": True,
                "task_id": self.task_id,
                "trace_id": self.trace_id,
                "data": [{"id": self.video_id, "created_at": _stamp(self.created_at), "state": "running"}],
            }
        elif state in ("succeeded", "failed"):
            rec["finished_at"] = self.finished_at
            rec["elapsed"] = self.finished_at - self.created_at
            rec["response"] = self.final_body()
        return rec

    def summary(self) -> dict[str, Any]:
        """What ``/_emulator/jobs`` shows about a job (more than the API would)."""
        return {
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "video_id": self.video_id,
            "path": self.path,
            "mode": self.mode,
            "state": self.state(),
            "request": self.request,
            "body_key": self.body_key,
            "callback_url": self.callback_url,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "video_url": self.video_url,
            "failure": self.failure.model_dump() if self.failure else None,
            "callbacks": list(self.callbacks),
        }


# ------------------------------------------------------------------------------------- state


class EmulatorState:
    """Everything one app knows; shared between the server thread and the test thread."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self._lock = threading.RLock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._init()

    def _init(self) -> None:
        self.faults = Faults.model_validate(dict(self.config.faults))
        self.jobs: dict[str, Job] = {}
        self.videos: dict[str, Job] = {}
        self.jobs_per_body: Counter[str] = Counter()
        self.requests_per_path: Counter[str] = Counter()
        self.responses_per_path: dict[str, Counter[int]] = {}
        self.faults_triggered: Counter[str] = Counter()
        self.callbacks: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self.epoch = getattr(self, "epoch", 0) + 1

    # ------------------------------------------------------------------ faults
    def set_faults(self, update: Mapping[str, Any] | Faults | None = None, **more: Any) -> Faults:
        """Merge fault settings (a key set to ``None`` clears that fault); returns all faults."""
        data: dict[str, Any] = (
            {k: getattr(update, k) for k in update.model_fields_set}
            if isinstance(update, Faults)
            else dict(update or {})
        )
        data.update(more)
        parsed = Faults.model_validate(data)
        with self._lock:
            for key in parsed.model_fields_set:
                setattr(self.faults, key, getattr(parsed, key))
            return self.faults.model_copy(deep=True)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = Faults()

    def take(
        self,
        name: str,
        path: str | None = None,
        predicate: Callable[[Any], bool] | None = None,
        **attrs: Any,
    ) -> Any:
        """Fire fault ``name`` if it applies (path, attributes, predicate): count it down."""
        with self._lock:
            rule = getattr(self.faults, name)
            if rule is None:
                return None
            if path is not None and rule.path is not None and rule.path != path:
                return None
            if any(getattr(rule, k) != v for k, v in attrs.items()):
                return None
            if predicate is not None and not predicate(rule):
                return None
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    setattr(self.faults, name, None)
            self.faults_triggered[name] += 1
            return rule.model_copy(deep=True)

    # ----------------------------------------------------------------- counters
    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def count_request(self, path: str) -> None:
        with self._lock:
            self.requests_per_path[path] += 1

    def count_response(self, path: str, status: int) -> None:
        with self._lock:
            self.responses_per_path.setdefault(path, Counter())[status] += 1

    def note_callback(self, job: Job, **entry: Any) -> None:
        entry = {"task_id": job.task_id, "url": job.callback_url, "at": time.time(), **entry}
        with self._lock:
            if job.epoch != self.epoch:
                return
            job.callbacks.append(entry)
            self.callbacks.append(entry)
            if entry.get("lost"):
                self.counters["callbacks_lost"] += 1
                return
            self.counters["callbacks_attempted"] += 1
            status = entry.get("status")
            ok = status is not None and 200 <= status < 300
            self.counters["callbacks_delivered" if ok else "callbacks_failed"] += 1

    # --------------------------------------------------------------------- jobs
    def create_job(
        self,
        *,
        path: str,
        endpoint: str,
        body: dict[str, Any],
        base_url: str,
        trace_id: str,
        async_: bool,
        source_video_id: str | None,
    ) -> Job:
        callback_url = body.get("callback_url") or None
        with self._lock:
            gen = self.faults.generation_seconds
            gen = self.config.generation_seconds if gen is None else gen
            task_id = str(uuid.uuid4())
            job = Job(
                task_id=task_id,
                trace_id=trace_id,
                video_id=source_video_id or uuid.uuid4().hex,
                path=path,
                type=endpoint,
                request=body,
                body_key=body_key(path, body),
                mode="callback" if callback_url else ("async" if async_ else "sync"),
                callback_url=callback_url,
                created_at=time.time(),
                generation_seconds=gen,
                pending_seconds=gen * self.config.pending_fraction,
                video_url=f"{base_url.rstrip('/')}{ADMIN_PREFIX}/videos/{task_id}.mp4",
                epoch=self.epoch,
                failure=self.take("fail_jobs", path),
                source_video_id=source_video_id,
            )
            if callback_url:
                job.callback_lose = self.take("callback_lose", path) is not None
                late = self.take("callback_delay", path)
                job.callback_delay = late.seconds if late else 0.0
                dup = self.take("callback_duplicate", path)
                job.callback_copies = dup.copies if dup else 1
            self.jobs[task_id] = job
            if source_video_id is None:
                self.videos[job.video_id] = job
            self.jobs_per_body[job.body_key] += 1
            self.counters["jobs_created"] += 1
            return job

    def job(self, task_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(task_id)

    def video(self, video_id: str) -> Job | None:
        """The job that made ``video_id``, if that video exists (its job succeeded)."""
        with self._lock:
            job = self.videos.get(video_id)
        return job if job is not None and job.state() == "succeeded" else None

    def jobs_snapshot(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    @property
    def jobs_created(self) -> int:
        with self._lock:
            return self.counters["jobs_created"]

    @property
    def max_jobs_per_body(self) -> int:
        with self._lock:
            return max(self.jobs_per_body.values(), default=0)

    def jobs_for_body(self, body: Mapping[str, Any], path: str = "/veo/videos") -> int:
        with self._lock:
            return self.jobs_per_body[body_key(path, body)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = self.counters
            return {
                "jobs_created": counters["jobs_created"],
                "jobs_per_body": dict(self.jobs_per_body),
                "max_jobs_per_body": max(self.jobs_per_body.values(), default=0),
                "requests_per_path": dict(self.requests_per_path),
                "responses_per_path": {
                    p: {str(s): n for s, n in c.items()} for p, c in self.responses_per_path.items()
                },
                "callbacks_attempted": counters["callbacks_attempted"],
                "callbacks_delivered": counters["callbacks_delivered"],
                "callbacks_failed": counters["callbacks_failed"],
                "callbacks_lost": counters["callbacks_lost"],
                "callbacks": list(self.callbacks),
                "downloads": counters["downloads"],
                "downloads_cut": counters["downloads_cut"],
                "requests_abandoned": counters["requests_abandoned"],
                "responses_dropped": counters["responses_dropped"],
                "faults_triggered": dict(self.faults_triggered),
                "faults": self.faults.model_dump(exclude_none=True),
                "config": self.config.describe(),
            }

    def reset(self) -> None:
        """Forget jobs, counters and faults (back to the config's); pending callbacks are dropped."""
        with self._lock:
            self._init()

    # -------------------------------------------------------- background tasks
    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_background(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


# ----------------------------------------------------------------------------------- videos


def sample_mp4() -> bytes:
    """The small, playable MP4 every job "generates" (packaged with the provider)."""
    from importlib.resources import files

    return (files("veo_provider.testing") / "assets" / "sample.mp4").read_bytes()


def mp4_length(sample_len: int, size: int | None) -> int:
    """Served length for a requested size: too small for a ``free`` box → the plain sample."""
    if size is None or size < sample_len + 8:
        return sample_len
    return size


def _free_box_header(box_size: int) -> bytes:
    if box_size <= 0xFFFFFFFF:
        return struct.pack(">I4s", box_size, b"free")
    return struct.pack(">I4sQ", 1, b"free", box_size)  # 64-bit "largesize" form


def iter_mp4(sample: bytes, size: int | None = None, chunk: int = _CHUNK) -> Iterator[bytes]:
    """Yield a valid MP4 of ``mp4_length`` bytes: the sample + one top-level ``free`` box.

    A generator, so a multi-gigabyte body never sits in memory.
    """
    total = mp4_length(len(sample), size)
    yield sample
    box = total - len(sample)
    if box <= 0:
        return
    header = _free_box_header(box)
    yield header
    remaining = box - len(header)
    zeros = bytes(chunk)
    while remaining > 0:
        n = min(chunk, remaining)
        yield zeros if n == chunk else zeros[:n]
        remaining -= n


# -------------------------------------------------------------------------------------- app


def _trace_id() -> str:
    return str(uuid.uuid4())


class _CountingMiddleware:
    """Counts requests (before the handler runs, so held requests count) and answer statuses."""

    def __init__(self, app: Any, state: EmulatorState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX + "/"):
            if scope["type"] == "http" and scope["path"].startswith(f"{ADMIN_PREFIX}/videos/"):
                self.state.count("downloads")
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self.state.count_request(path)

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.state.count_response(path, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)


class _Drop:
    """Answers nothing; the app then returns a value so that uvicorn closes the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["veo_emulator.drop"] = True


class _CutBody:
    """Starts an MP4 answer and stops after ``limit`` bytes, leaving the connection to close."""

    def __init__(self, chunks: Iterator[bytes], total: int, limit: int):
        self.chunks, self.total, self.limit = chunks, total, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"video/mp4"), (b"content-length", str(self.total).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        for chunk in self.chunks:
            part = chunk[: self.limit - sent]
            if part:
                await send({"type": "http.response.body", "body": part, "more_body": True})
                sent += len(part)
            if sent >= self.limit:
                break
        # Returning without the final body message: uvicorn closes the connection mid-body.


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """Build one emulator app; its state is ``app.state.emulator`` (an ``EmulatorState``)."""
    from fastapi import FastAPI
    from starlette.responses import JSONResponse, Response, StreamingResponse

    cfg = config or EmulatorConfig()
    state = EmulatorState(cfg)
    sample = sample_mp4()

    class _EmulatorApp(FastAPI):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
            await super().__call__(scope, receive, send)
            if scope.get("veo_emulator.drop"):
                # uvicorn closes the transport when an ASGI app returns a value: a dropped answer.
                return _DROP_MARKER
            return None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.cancel_background()

    app = _EmulatorApp(
        title="Veo API emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.emulator = state
    app.add_middleware(_CountingMiddleware, state=state)

    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {"success": False, "error": {"code": code, "message": message}, "trace_id": _trace_id()}
        return JSONResponse(body, status_code=status, headers=headers)

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in state.config.tokens

    async def gate(request: Request, path: str) -> Response | None:
        """What happens before the API looks at the body: slowness, auth, throttling, outages."""
        slow = state.take("slow_response", path, before=True)
        if slow is not None:
            await asyncio.sleep(slow.seconds)
            if await request.is_disconnected():
                state.count("requests_abandoned")
                return error(504, "timeout", "the client went away")
        if not authorized(request):
            return error(401, "invalid_token", "Unauthorized, invalid or missing authorization token.")
        limited = state.take("rate_limit", path)
        if limited is not None:
            return error(429, "too_many_requests", limited.message, headers={"Retry-After": str(limited.retry_after)})
        return outage(path, after_create=False)

    def outage(path: str, *, after_create: bool) -> Response | None:
        rule = state.take("server_error", path, after_create=after_create)
        if rule is not None:
            return error(500, "api_error", rule.message or "fetch failed")
        rule = state.take("gateway_timeout", path, after_create=after_create)
        if rule is not None:
            return error(504, "timeout", rule.message or "Gateway timeout: the upstream did not answer.")
        return None

    async def finish(path: str) -> Response | _Drop | None:
        """What happens after the work is done: slow answer, 500/504 anyway, dropped answer."""
        slow = state.take("slow_response", path, before=False)
        if slow is not None:
            await asyncio.sleep(slow.seconds)
        failed = outage(path, after_create=True)
        if failed is not None:
            return failed
        if state.take("drop_response", path) is not None:
            state.count("responses_dropped")
            log.warning("Veo emulator: dropping the answer to %s on purpose (drop_response fault)", path)
            return _Drop()
        return None

    async def read_object(request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return error(400, "bad_request", f"the request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return error(400, "bad_request", "the request body must be a JSON object")
        return body

    async def gated_object(request: Request, path: str) -> dict[str, Any] | Response:
        """The common start of every API call: read the body, pass the gate, parse the JSON object."""
        await request.body()
        early = await gate(request, path)
        return early if early is not None else await read_object(request)

    def make_submit(endpoint: str) -> Callable[[Request], Any]:
        async def submit(request: Request) -> Response | _Drop:
            path = request.url.path
            body = await gated_object(request, path)
            if not isinstance(body, dict):
                return body
            try:
                req = build_request(endpoint, **body)
            except VeoRequestError as exc:
                return error(400, "bad_request", "; ".join(exc.errors))
            used_up = state.take("used_up", path)
            if used_up is not None:
                return error(403, "used_up", used_up.message)
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                lowered = prompt.lower()
                refused = state.take("moderation", path, predicate=lambda r: any(w.lower() in lowered for w in r.words))
                if refused is not None:
                    return error(403, "forbidden", refused.message)
            video_id: str | None = getattr(req, "video_id", None)
            is_1080p = endpoint == "videos" and getattr(req, "action", None) == GET_1080P
            source = state.video(video_id) if video_id else None
            if video_id and (is_1080p or state.config.strict_video_ids) and source is None:
                return error(
                    400,
                    "bad_request",
                    f"video_id {video_id!r} is not a finished video of this account: "
                    "pass the data[].id of a succeeded result",
                )
            if source is not None and source.type == "extend" and endpoint in ("reshoot", "objects"):
                return error(400, "bad_request", f"a video made by /veo/extend cannot be sent to /veo/{endpoint}")
            job = state.create_job(
                path=path,
                endpoint=endpoint,
                body=body,
                base_url=state.config.public_url or str(request.base_url),
                trace_id=_trace_id(),
                async_=bool(getattr(req, "async_", False)),
                source_video_id=video_id if is_1080p else None,
            )
            if job.mode == "callback":
                state.spawn(deliver(job))
            late = await finish(path)
            if late is not None:
                return late
            if job.mode != "sync":
                return JSONResponse({"task_id": job.task_id})
            await asyncio.sleep(job.remaining())
            status = job.failure.http_status if job.failure else 200
            return JSONResponse(job.final_body(), status_code=status)

        return submit

    async def deliver(job: Job) -> None:
        """POST the final body to the job's callback URL (subject to the callback faults)."""
        import httpx

        await asyncio.sleep(job.remaining() + job.callback_delay)
        if job.epoch != state.epoch or job.callback_url is None:
            return
        if job.callback_lose:
            state.note_callback(job, lost=True, status=None, error="lost on purpose")
            return
        body = job.final_body()
        async with httpx.AsyncClient(timeout=state.config.callback_timeout) as client:
            for copy in range(job.callback_copies):
                attempts = 1 + max(0, state.config.callback_retries)
                for attempt in range(attempts):
                    status: int | None = None
                    err: str | None = None
                    reply: str | None = None
                    sent_at = time.time()
                    try:
                        answer = await client.post(job.callback_url, json=body)
                        status, reply = answer.status_code, answer.text[:500]
                    except Exception as exc:  # a bad URL too: record it, never kill the loop
                        err = f"{type(exc).__name__}: {exc}"
                    state.note_callback(
                        job, copy=copy, attempt=attempt, status=status, error=err, reply=reply, sent_at=sent_at
                    )
                    if status is not None and 200 <= status < 300:
                        break
                    if attempt + 1 < attempts:
                        await asyncio.sleep(state.config.callback_retry_delay)

    async def tasks(request: Request) -> Response | _Drop:
        path = request.url.path
        body = await gated_object(request, path)
        if not isinstance(body, dict):
            return body
        action = body.get("action") or "retrieve"
        payload: dict[str, Any]
        if action == "retrieve":
            task_id = body.get("id")
            if not isinstance(task_id, str) or not task_id:
                return error(400, "bad_request", "action 'retrieve' needs id: the task_id of a submission")
            job = state.job(task_id)
            if job is None:
                return error(404, "not_found", f"task {task_id!r} was not found")
            payload = job.record()
        elif action == "retrieve_batch":
            ids = body.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return error(400, "bad_request", "action 'retrieve_batch' needs ids: a list of task_ids")
            now = time.time()
            found = [state.job(i) for i in ids]
            items = [j.record(now) for j in found if j is not None]
            payload = {"items": items, "count": len(items)}
        else:
            return error(400, "bad_request", f"action {action!r} is unknown: use retrieve or retrieve_batch")
        late = await finish(path)
        return late if late is not None else JSONResponse(payload)

    async def video(request: Request) -> Response | _CutBody:
        name = request.path_params["name"]
        job = state.job(name.removesuffix(".mp4")) if name.endswith(".mp4") else None
        if job is None or job.state() != "succeeded":
            return error(404, "not_found", f"no video at {request.url.path}")
        size: int | None = state.faults.video_size
        if "size" in request.query_params:
            try:
                size = int(request.query_params["size"])
                if size < 0:
                    raise ValueError(size)
            except ValueError:
                return error(400, "bad_request", "size must be a non-negative integer (bytes)")
        total = mp4_length(len(sample), size)
        headers = {"content-length": str(total), "accept-ranges": "none"}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers, media_type="video/mp4")
        cut = state.take("download_cut")
        if cut is not None:
            state.count("downloads_cut")
            limit = total // 2 if cut.after_bytes is None else min(cut.after_bytes, total - 1)
            return _CutBody(iter_mp4(sample, size), total, limit)

        async def stream() -> AsyncIterator[bytes]:
            for chunk in iter_mp4(sample, size):
                yield chunk

        return StreamingResponse(stream(), headers=headers, media_type="video/mp4")

    # ------------------------------------------------------------------ admin
    async def admin_stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def admin_faults(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"faults": state.faults.model_dump(exclude_none=True)})
        body = await read_object(request)
        if not isinstance(body, dict):
            return body
        try:
            faults = state.set_faults(body)
        except ValidationError as exc:
            return error(400, "bad_request", str(exc))
        return JSONResponse({"faults": faults.model_dump(exclude_none=True)})

    async def admin_reset(request: Request) -> Response:
        state.reset()
        await state.cancel_background()
        return JSONResponse({"reset": True})

    async def admin_jobs(request: Request) -> Response:
        items = [j.summary() for j in state.jobs_snapshot()]
        return JSONResponse({"items": items, "count": len(items)})

    async def no_api(request: Request) -> Response:
        return error(404, "no_api", f"no API at {request.method} {request.url.path}")

    async def on_exception(request: Request, exc: Exception) -> Response:
        log.exception("Veo emulator: unexpected error")
        return error(500, "api_error", f"emulator error: {type(exc).__name__}: {exc}")

    def route(path: str, endpoint: Callable[..., Any], *methods: str) -> None:
        # Plain Starlette routes: the handlers read raw bodies (the vendor's 400s, not FastAPI's
        # 422s) and some answer with raw ASGI callables (dropped/cut answers).
        app.add_route(path, endpoint, methods=list(methods), include_in_schema=False)

    for name in SUBMIT_ENDPOINTS:
        route(f"/veo/{name}", make_submit(name), "POST")
    route(TASKS_PATH, tasks, "POST")
    route(f"{ADMIN_PREFIX}/videos/{{name}}", video, "GET", "HEAD")
    route(f"{ADMIN_PREFIX}/stats", admin_stats, "GET")
    route(f"{ADMIN_PREFIX}/faults", admin_faults, "GET", "POST")
    route(f"{ADMIN_PREFIX}/reset", admin_reset, "POST")
    route(f"{ADMIN_PREFIX}/jobs", admin_jobs, "GET")
    route("/{rest:path}", no_api, "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    app.add_exception_handler(Exception, on_exception)
    return app


# ----------------------------------------------------------------------------- in-process run


class VeoEmulator:
    """Runs an emulator app with uvicorn in a background thread on a free local port.

    The state is this process's: tests read counters and set faults directly, no HTTP needed.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any):
        cfg = config or EmulatorConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.app = create_app(self.config)
        self.state: EmulatorState = self.app.state.emulator
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the emulator is not started: call start() or use it as a context manager")
        return f"http://{self.config.host}:{self._port}"

    @property
    def token(self) -> str:
        return self.config.tokens[0]

    @property
    def headers(self) -> dict[str, str]:
        """Headers the real client sends, with a valid token."""
        return {
            "accept": "application/json",
            "authorization": f"Bearer {self.token}",
            "content-type": "application/json",
        }

    def start(self, timeout: float = 10.0) -> VeoEmulator:
        import uvicorn

        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self._sock, self._port = sock, sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=1,
            )
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"veo-emulator-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Veo emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> VeoEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- state access
    def set_faults(self, update: Mapping[str, Any] | Faults | None = None, **faults: Any) -> Faults:
        return self.state.set_faults(update, **faults)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def reset(self) -> None:
        self.state.reset()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    @property
    def jobs(self) -> list[Job]:
        return self.state.jobs_snapshot()

    @property
    def jobs_created(self) -> int:
        return self.state.jobs_created

    @property
    def max_jobs_per_body(self) -> int:
        return self.state.max_jobs_per_body

    def jobs_for_body(self, body: Mapping[str, Any], path: str = "/veo/videos") -> int:
        return self.state.jobs_for_body(body, path)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
        """Poll ``predicate`` (e.g. on ``stats()``) until true or ``timeout``; returns the last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


# --------------------------------------------------------------------------- callback sink


@dataclasses.dataclass
class ReceivedCallback:
    path: str
    headers: dict[str, str]
    raw: bytes
    received_at: float

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class CallbackSink:
    """A tiny threaded HTTP server that records every POST: a webhook.site for tests."""

    def __init__(self, status: int = 200, host: str = "127.0.0.1"):
        self.status = status
        self.host = host
        self.received: list[ReceivedCallback] = []
        self._cond = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the callback sink is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> CallbackSink:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                item = ReceivedCallback(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, time.time())
                with sink._cond:
                    sink.received.append(item)
                    sink._cond.notify_all()
                self.send_response(sink.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() is quick
            name="veo-callback-sink",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> CallbackSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedCallback]:
        """Block until ``n`` callbacks arrived (or ``timeout``); returns all received so far."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= n, timeout)
            return list(self.received)


# -------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m veo_provider.testing.emulator``: serve until killed."""
    parser = argparse.ArgumentParser(
        prog="python -m veo_provider.testing.emulator",
        description="Offline emulator of the AceData Cloud Veo API (with fault injection).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", action="append", help="accepted bearer token (repeatable; default: test-token)")
    parser.add_argument("--generation-seconds", type=float, default=3.0)
    parser.add_argument("--pending-fraction", type=float, default=0.2)
    parser.add_argument("--public-url", default=None, help="base of video_url (default: the request's)")
    parser.add_argument("--strict-video-ids", action="store_true")
    parser.add_argument("--callback-retries", type=int, default=0)
    parser.add_argument("--faults", default="{}", help="initial faults as JSON, e.g. '{\"rate_limit\": 2}'")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import uvicorn

    config = EmulatorConfig(
        token=args.token or "test-token",
        generation_seconds=args.generation_seconds,
        pending_fraction=args.pending_fraction,
        public_url=args.public_url,
        strict_video_ids=args.strict_video_ids,
        callback_retries=args.callback_retries,
        faults=json.loads(args.faults),
        host=args.host,
        port=args.port,
    )
    print(f"Veo API emulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
