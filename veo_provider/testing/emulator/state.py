"""Configuration and run-time state of the Veo API emulator (jobs, faults, counters).

The state is shared between the server thread and the test thread, so every access takes its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from veo_provider.testing.emulator.faults import Faults
from veo_provider.testing.emulator.jobs import ADMIN_PREFIX, Job, body_key
from veo_provider.testing.emulator.media import delivered_resolution

__all__ = ["EmulatorConfig", "EmulatorState"]


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
    #: Requests kept in the access log (``access_log()``, ``/_emulator/access_log``); 0: none.
    access_log_size: int = 10_000

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
        self.access: deque[dict[str, Any]] = deque(maxlen=max(0, self.config.access_log_size))
        self.epoch = getattr(self, "epoch", 0) + 1
        #: The picture the next new video shows (consecutive videos differ; an upscale keeps its source's).
        self.next_picture = 0

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
        text: str | None = None,
        **attrs: Any,
    ) -> Any:
        """Fire fault ``name`` if it applies (path, body ``text``, attributes, predicate): count it down."""
        with self._lock:
            rule = getattr(self.faults, name)
            if rule is None:
                return None
            if path is not None and rule.path is not None and rule.path != path:
                return None
            if rule.match is not None and (text is None or rule.match not in text):
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

    def log_access(self, entry: dict[str, Any]) -> None:
        """One line of the access log (headers already redacted by the middleware)."""
        with self._lock:
            self.access.append(entry)

    def access_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.access)

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
        text = json.dumps(body, ensure_ascii=False)
        with self._lock:
            gen = self.faults.generation_seconds
            gen = self.config.generation_seconds if gen is None else gen
            task_id = str(uuid.uuid4())
            picture = self._picture_for(body.get("video_id"))
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
                failure=self.take("fail_jobs", path, text=text),
                source_video_id=source_video_id,
                picture=picture,
                resolution=delivered_resolution(endpoint, body),
            )
            if callback_url:
                job.callback_lose = self.take("callback_lose", path, text=text) is not None
                late = self.take("callback_delay", path, text=text)
                job.callback_delay = late.seconds if late else 0.0
                dup = self.take("callback_duplicate", path, text=text)
                job.callback_copies = dup.copies if dup else 1
            self.jobs[task_id] = job
            if source_video_id is None:
                self.videos[job.video_id] = job
            self.jobs_per_body[job.body_key] += 1
            self.counters["jobs_created"] += 1
            return job

    def _picture_for(self, source_video_id: Any) -> int:
        """The source video's picture (an upscale or edit of it), else the next one (under the lock)."""
        source = self.videos.get(source_video_id) if isinstance(source_video_id, str) else None
        if source is not None:
            return source.picture
        picture, self.next_picture = self.next_picture, self.next_picture + 1
        return picture

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
