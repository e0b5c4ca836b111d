"""The vendor's endpoints of the Veo API emulator: submissions, task reads, callbacks and video downloads.

Every API call goes the same way: ``gate`` (slowness, auth, throttling, outages) before the body
is looked at, the work, then ``finish`` (slow, failed or dropped answers after the work is done).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from veo_provider.models import GET_1080P, VeoRequestError, build_request
from veo_provider.testing.emulator.asgi import Drop, error, new_trace_id, read_object
from veo_provider.testing.emulator.jobs import Job
from veo_provider.testing.emulator.media import CutBody, clip_mp4, iter_mp4, mp4_length
from veo_provider.testing.emulator.state import EmulatorState

__all__ = ["VeoApi"]

log = logging.getLogger(__name__)

_Handler = Callable[[Request], Awaitable[Response | Drop]]


async def body_text(request: Request) -> str:
    """The request body as text, for faults aimed by ``match`` (read once; Starlette caches it)."""
    return (await request.body()).decode("utf-8", "replace")


class VeoApi:
    """The handlers of the vendor's routes, over one ``EmulatorState``."""

    def __init__(self, state: EmulatorState):
        self.state = state

    # ------------------------------------------------------------------ around every call
    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() in self.state.config.tokens

    async def gate(self, request: Request, path: str) -> Response | None:
        """What happens before the API looks at the body: slowness, auth, throttling, outages."""
        text = await body_text(request)
        slow = self.state.take("slow_response", path, text=text, before=True)
        if slow is not None:
            await asyncio.sleep(slow.seconds)
            if await request.is_disconnected():
                self.state.count("requests_abandoned")
                return error(504, "timeout", "the client went away")
        if not self.authorized(request):
            return error(401, "invalid_token", "Unauthorized, invalid or missing authorization token.")
        limited = self.state.take("rate_limit", path, text=text)
        if limited is not None:
            return error(429, "too_many_requests", limited.message, headers={"Retry-After": str(limited.retry_after)})
        return self.outage(path, text, after_create=False)

    def outage(self, path: str, text: str | None = None, *, after_create: bool) -> Response | None:
        rule = self.state.take("server_error", path, text=text, after_create=after_create)
        if rule is not None:
            return error(500, "api_error", rule.message or "fetch failed")
        rule = self.state.take("gateway_timeout", path, text=text, after_create=after_create)
        if rule is not None:
            return error(504, "timeout", rule.message or "Gateway timeout: the upstream did not answer.")
        return None

    async def finish(self, path: str, text: str | None = None) -> Response | Drop | None:
        """What happens after the work is done: slow answer, 500/504 anyway, dropped answer."""
        slow = self.state.take("slow_response", path, text=text, before=False)
        if slow is not None:
            await asyncio.sleep(slow.seconds)
        failed = self.outage(path, text, after_create=True)
        if failed is not None:
            return failed
        if self.state.take("drop_response", path, text=text) is not None:
            self.state.count("responses_dropped")
            log.warning("Veo emulator: dropping the answer to %s on purpose (drop_response fault)", path)
            return Drop()
        return None

    async def gated_object(self, request: Request, path: str) -> dict[str, Any] | Response:
        """The common start of every API call: read the body, pass the gate, parse the JSON object."""
        await request.body()
        early = await self.gate(request, path)
        return early if early is not None else await read_object(request)

    # ------------------------------------------------------------------ submissions
    def submit_endpoint(self, endpoint: str) -> _Handler:
        """The route handler of ``POST /veo/<endpoint>``."""

        async def submit(request: Request) -> Response | Drop:
            return await self.submit(endpoint, request)

        return submit

    async def submit(self, endpoint: str, request: Request) -> Response | Drop:
        path = request.url.path
        body = await self.gated_object(request, path)
        if not isinstance(body, dict):
            return body
        try:
            req = build_request(endpoint, **body)
        except VeoRequestError as exc:
            return error(400, "bad_request", "; ".join(exc.errors))
        text = await body_text(request)
        refused = self.refusal(path, body, text)
        if refused is not None:
            return refused
        video_id: str | None = getattr(req, "video_id", None)
        is_1080p = endpoint == "videos" and getattr(req, "action", None) == GET_1080P
        bad_source = self.source_error(endpoint, video_id, is_1080p)
        if bad_source is not None:
            return bad_source
        job = self.state.create_job(
            path=path,
            endpoint=endpoint,
            body=body,
            base_url=self.state.config.public_url or str(request.base_url),
            trace_id=new_trace_id(),
            async_=bool(getattr(req, "async_", False)),
            source_video_id=video_id if is_1080p else None,
        )
        if job.mode == "callback":
            self.state.spawn(self.deliver(job))
        late = await self.finish(path, text)
        return late if late is not None else await self.answer(job)

    def refusal(self, path: str, body: dict[str, Any], text: str) -> Response | None:
        """A valid body the account may not pay for: no balance, or a moderated prompt."""
        used_up = self.state.take("used_up", path, text=text)
        if used_up is not None:
            return error(403, "used_up", used_up.message)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return None
        lowered = prompt.lower()
        refused = self.state.take(
            "moderation", path, text=text, predicate=lambda r: any(w.lower() in lowered for w in r.words)
        )
        return None if refused is None else error(403, "forbidden", refused.message)

    def source_error(self, endpoint: str, video_id: str | None, is_1080p: bool) -> Response | None:
        """A ``video_id`` that is not a video this endpoint may start from."""
        source = self.state.video(video_id) if video_id else None
        if video_id and (is_1080p or self.state.config.strict_video_ids) and source is None:
            return error(
                400,
                "bad_request",
                f"video_id {video_id!r} is not a finished video of this account: "
                "pass the data[].id of a succeeded result",
            )
        if source is not None and source.type == "extend" and endpoint in ("reshoot", "objects"):
            return error(400, "bad_request", f"a video made by /veo/extend cannot be sent to /veo/{endpoint}")
        return None

    @staticmethod
    async def answer(job: Job) -> Response:
        """``{"task_id"}`` at once (async or callback mode), else the final body once the job is done."""
        if job.mode != "sync":
            return JSONResponse({"task_id": job.task_id})
        await asyncio.sleep(job.remaining())
        status = job.failure.http_status if job.failure else 200
        return JSONResponse(job.final_body(), status_code=status)

    # ------------------------------------------------------------------ callbacks
    async def deliver(self, job: Job) -> None:
        """POST the final body to the job's callback URL (subject to the callback faults)."""
        await asyncio.sleep(job.remaining() + job.callback_delay)
        if job.epoch != self.state.epoch or job.callback_url is None:
            return
        if job.callback_lose:
            self.state.note_callback(job, lost=True, status=None, error="lost on purpose")
            return
        body = job.final_body()
        async with httpx.AsyncClient(timeout=self.state.config.callback_timeout) as client:
            for copy in range(job.callback_copies):
                await self.post_callback(client, job, job.callback_url, body, copy)

    async def post_callback(
        self, client: httpx.AsyncClient, job: Job, url: str, body: dict[str, Any], copy: int
    ) -> None:
        """One copy of a callback, with the configured retries; every attempt is recorded."""
        attempts = 1 + max(0, self.state.config.callback_retries)
        for attempt in range(attempts):
            status: int | None = None
            err: str | None = None
            reply: str | None = None
            sent_at = time.time()
            try:
                answer = await client.post(url, json=body)
                status, reply = answer.status_code, answer.text[:500]
            except Exception as exc:  # a bad URL too: record it, never kill the loop
                err = f"{type(exc).__name__}: {exc}"
            self.state.note_callback(
                job, copy=copy, attempt=attempt, status=status, error=err, reply=reply, sent_at=sent_at
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt + 1 < attempts:
                await asyncio.sleep(self.state.config.callback_retry_delay)

    # ------------------------------------------------------------------ task reads
    async def tasks(self, request: Request) -> Response | Drop:
        path = request.url.path
        body = await self.gated_object(request, path)
        if not isinstance(body, dict):
            return body
        action = body.get("action") or "retrieve"
        if action == "retrieve":
            payload = self.retrieve(body)
        elif action == "retrieve_batch":
            payload = self.retrieve_batch(body)
        else:
            return error(400, "bad_request", f"action {action!r} is unknown: use retrieve or retrieve_batch")
        if isinstance(payload, Response):
            return payload
        late = await self.finish(path, await body_text(request))
        return late if late is not None else JSONResponse(payload)

    def retrieve(self, body: dict[str, Any]) -> dict[str, Any] | Response:
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            return error(400, "bad_request", "action 'retrieve' needs id: the task_id of a submission")
        job = self.state.job(task_id)
        if job is None:
            return error(404, "not_found", f"task {task_id!r} was not found")
        return job.record()

    def retrieve_batch(self, body: dict[str, Any]) -> dict[str, Any] | Response:
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(400, "bad_request", "action 'retrieve_batch' needs ids: a list of task_ids")
        now = time.time()
        found = [self.state.job(i) for i in ids]
        items = [j.record(now) for j in found if j is not None]
        return {"items": items, "count": len(items)}

    # ------------------------------------------------------------------ videos
    async def video(self, request: Request) -> Response | CutBody:
        name = request.path_params["name"]
        job = self.state.job(name.removesuffix(".mp4")) if name.endswith(".mp4") else None
        if job is None or job.state() != "succeeded":
            return error(404, "not_found", f"no video at {request.url.path}")
        try:
            size = self.requested_size(request)
        except ValueError:
            return error(400, "bad_request", "size must be a non-negative integer (bytes)")
        clip = clip_mp4(job.picture, job.resolution)
        total = mp4_length(len(clip), size)
        headers = {"content-length": str(total), "accept-ranges": "none"}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers, media_type="video/mp4")
        cut = self.state.take("download_cut")
        if cut is not None:
            self.state.count("downloads_cut")
            limit = total // 2 if cut.after_bytes is None else min(cut.after_bytes, total - 1)
            return CutBody(iter_mp4(clip, size), total, limit)
        return StreamingResponse(self.stream(clip, size), headers=headers, media_type="video/mp4")

    def requested_size(self, request: Request) -> int | None:
        """``?size=N`` (bytes), else the ``video_size`` fault; ``ValueError`` if not an integer >= 0."""
        if "size" not in request.query_params:
            return self.state.faults.video_size
        size = int(request.query_params["size"])
        if size < 0:
            raise ValueError(size)
        return size

    @staticmethod
    async def stream(clip: bytes, size: int | None) -> AsyncIterator[bytes]:
        for chunk in iter_mp4(clip, size):
            yield chunk
