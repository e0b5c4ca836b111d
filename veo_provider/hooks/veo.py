"""VeoHook: the connection and every HTTP call to the Veo API (sync and async).

Why it looks like this:
- Reads are retried (429 honouring Retry-After, 5xx, transport) with jittered backoff.
- A paid submission is sent once. It is retried only when the API provably did not take it
  (connect failure, 429); otherwise a lost answer raises ``VeoSubmissionUncertain``.
- Everything that exists per waiting job reuses one SSL context, and async calls share one
  client per event loop, so 1,000 waiting triggers cost one client, not 1,000.
- The token only ever travels in the Authorization header of API calls; it is not in any
  repr, log line or exception, and it is never sent to video (CDN) URLs. The shared clients
  keep no cookies: one client serves many connections (tokens).
- Downloads go to a fresh temporary sibling and are renamed into place, capped in size; every
  redirect hop passes the address policy and is connected to as checked (``hooks.downloads``).
- API calls follow redirects only within the Base URL's origin, and only 307/308.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import tenacity
from airflow.providers.common.compat.sdk import BaseHook

from veo_provider import addresses
from veo_provider.exceptions import (
    VeoAddressError,
    VeoAuthError,
    VeoDownloadTooLarge,
    VeoError,
    VeoRateLimitError,
    VeoServerError,
    VeoSubmissionUncertain,
    VeoTransportError,
    error_from_response,
)
from veo_provider.hooks import downloads, files
from veo_provider.hooks.clients import (
    api_redirect,
    client_options,
    download_client,
    shared_async_client,
)
from veo_provider.models import (
    Submission,
    TaskBatch,
    TaskRecord,
    TaskStatus,
    VeoRequest,
    VeoResult,
    VideosRequest,
)
from veo_provider.models.requests import describe, fetched_urls
from veo_provider.settings import VeoSettings, aread_settings, read_settings

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

__all__ = ["VeoHook", "VeoSettings"]

log = logging.getLogger(__name__)

BATCH_SIZE = 50
_MB = 1024 * 1024
_IMAGE_FIX = "upload the image somewhere public the Veo API can fetch, e.g. a signed bucket URL"
# ------------------------------------------------------------------------- shared HTTP logic


def _transport_error(exc: Exception, method: str, url: str, api: tuple[str, str] | None = None) -> VeoTransportError:
    # Only failures before a byte was sent prove the server did not take the request
    # (a DNS failure is a ConnectError too). httpx quotes a bad header (it may hold the token): not echoed.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    detail = "a header value is not valid" if isinstance(exc, httpx.LocalProtocolError) else exc or "no detail"
    text = f"{type(exc).__name__} on {method} {url}: {detail}"
    if api is not None and not sent:  # nothing answered at all: most often a wrong Base URL
        text = f"Cannot reach the Veo API at {api[1]} (Veo connection {api[0]!r}): {text}. Check the connection's"
        text += " Base URL (host) and that this machine can reach it"
    return VeoTransportError(text, sent=sent)


def _never_sent(exc: VeoError) -> bool:
    return isinstance(exc, VeoTransportError) and not exc.sent


def _parse(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 2xx answer, or the VeoError that the answer means."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if response.status_code >= 400:
        raise error_from_response(response.status_code, body, response.headers)
    if not isinstance(body, dict):
        raise VeoServerError(
            f"Veo API answered HTTP {response.status_code} without a JSON object",
            status=response.status_code,
        )
    if body.get("success") is False and not body.get("task_id"):
        raise error_from_response(response.status_code, body, response.headers)
    return body


def _is_retryable_read(exc: BaseException) -> bool:
    return isinstance(exc, VeoError) and exc.retryable


def _is_retryable_submit(exc: BaseException) -> bool:
    return isinstance(exc, VeoRateLimitError) or (isinstance(exc, VeoTransportError) and not exc.sent)


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.expo = tenacity.wait_exponential(multiplier=initial, max=maximum) + tenacity.wait_random(0, initial)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = self.expo(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, VeoRateLimitError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, 300.0))
        return delay


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "Veo API call failed (attempt %d), retrying in %.1fs: %s",
        retry_state.attempt_number,
        retry_state.upcoming_sleep,
        exc,
    )


def _uncertain(exc: VeoError, path: str) -> VeoSubmissionUncertain:
    return VeoSubmissionUncertain(
        f"The submission to {path} may have reached the Veo API, but its answer was lost ({exc.message}). "
        "It was not resent, to avoid paying twice.",
        cause=exc,
    )


def _submission(body: dict[str, Any], path: str) -> Submission:
    result = VeoResult.model_validate(body)
    if not result.task_id:
        raise VeoSubmissionUncertain(
            f"The Veo API accepted the submission to {path} but its answer has no task_id; it was not resent."
        )
    has_result = bool(result.data) or result.success is False
    return Submission(veo_task_id=result.task_id, trace_id=result.trace_id, result=result if has_result else None)


class VeoHook(BaseHook):
    """Talks to the AceData Cloud Veo API with the ``veo`` connection (token in the password).

    :param veo_conn_id: The connection id (default ``veo_default``). Host is the base URL
        (default ``https://api.acedata.cloud``); extras set timeouts, retries and callbacks.
    :param retry_wait_initial: First backoff delay of read retries in seconds (doubles each time).
    :param retry_wait_max: Longest backoff delay in seconds.
    """

    conn_name_attr = "veo_conn_id"
    default_conn_name = "veo_default"
    conn_type = "veo"
    hook_name = "Veo (AceData Cloud)"

    def __init__(
        self,
        veo_conn_id: str = default_conn_name,
        *,
        retry_wait_initial: float = 1.0,
        retry_wait_max: float = 16.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.veo_conn_id = veo_conn_id
        self.retry_wait_initial = retry_wait_initial
        self.retry_wait_max = retry_wait_max
        self._settings: VeoSettings | None = None
        self._client: httpx.Client | None = None
        self._video_hosts: downloads.VideoHosts | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(veo_conn_id={self.veo_conn_id!r})"

    # ------------------------------------------------------------------ settings / clients

    @property
    def settings(self) -> VeoSettings:
        """The connection's settings, read once per hook (the token never leaves them)."""
        if self._settings is None:
            self._settings = read_settings(self, self.veo_conn_id)
        return self._settings

    async def aget_settings(self) -> VeoSettings:
        """Read the connection without blocking the event loop (the triggerer's way)."""
        if self._settings is None:
            self._settings = await aread_settings(self, self.veo_conn_id)
        return self._settings

    def get_conn(self) -> httpx.Client:
        """The hook's one sync client (reused across calls; closed by ``close()``)."""
        if self._client is None or self._client.is_closed:
            self._client = httpx.Client(**client_options())
        return self._client

    def close(self) -> None:
        """Close the hook's sync client (the shared async client lives with its event loop)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> VeoHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _timeout(self, s: VeoSettings, read: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(read or s.timeout, connect=s.connect_timeout)

    def _retrying(self, s: VeoSettings, paid: bool) -> dict[str, Any]:
        return {
            "retry": tenacity.retry_if_exception(_is_retryable_submit if paid else _is_retryable_read),
            "wait": _Wait(self.retry_wait_initial, self.retry_wait_max),
            "stop": tenacity.stop_after_attempt(s.max_retries),
            "before_sleep": _log_retry,
            "reraise": True,
        }

    # ------------------------------------------------------------------ request building

    def _submit_args(self, s: VeoSettings, request: VeoRequest) -> tuple[str, dict[str, Any], float]:
        body = request.to_body(s.get1080p_action) if isinstance(request, VideosRequest) else request.to_body()
        held = not body.get("callback_url") and not body.get("async")
        # A synchronous submission is held open until the video exists (minutes).
        return request.path, body, (s.submit_timeout if held else s.timeout)

    def _post(
        self,
        s: VeoSettings,
        path: str,
        body: dict[str, Any],
        read: float | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> dict[str, Any]:
        url, client = s.base_url + path, self.get_conn()
        try:
            response = client.post(
                url, json=body, headers=s.headers(self.veo_conn_id), timeout=timeout or self._timeout(s, read)
            )
            while (hop := api_redirect(response)) is not None:
                response = client.send(hop)
        except httpx.TransportError as exc:
            raise _transport_error(exc, "POST", url, (self.veo_conn_id, s.base_url)) from None
        return _parse(response)

    async def _apost(
        self, s: VeoSettings, path: str, body: dict[str, Any], read: float | None = None
    ) -> dict[str, Any]:
        url, client = s.base_url + path, shared_async_client()
        try:
            response = await client.post(
                url, json=body, headers=s.headers(self.veo_conn_id), timeout=self._timeout(s, read)
            )
            while (hop := api_redirect(response)) is not None:
                response = await client.send(hop)
        except httpx.TransportError as exc:
            raise _transport_error(exc, "POST", url, (self.veo_conn_id, s.base_url)) from None
        return _parse(response)

    def _call(self, path: str, body: dict[str, Any], *, paid: bool, read: float | None = None) -> dict[str, Any]:
        s = self.settings
        try:
            for attempt in tenacity.Retrying(**self._retrying(s, paid)):
                with attempt:
                    return self._post(s, path, body, read)
        except (VeoServerError, VeoTransportError) as exc:
            # A submission that never left this machine is safe to try again (the task retries).
            if paid and not _never_sent(exc):
                raise _uncertain(exc, path) from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(self, path: str, body: dict[str, Any], *, paid: bool, read: float | None = None) -> dict[str, Any]:
        s = await self.aget_settings()
        try:
            async for attempt in tenacity.AsyncRetrying(**self._retrying(s, paid)):
                with attempt:
                    return await self._apost(s, path, body, read)
        except (VeoServerError, VeoTransportError) as exc:
            # A submission that never left this machine is safe to try again (the task retries).
            if paid and not _never_sent(exc):
                raise _uncertain(exc, path) from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ public API (sync)

    def check_image_hosts(self, request: VeoRequest) -> None:
        """Refuse, before anything is paid, image URLs whose host resolves to a non-global address.

        The request models checked the URLs' text; this is the one DNS lookup per host, made in
        the worker (never at DAG-parse time). A host this machine cannot resolve passes: the
        vendor resolves it from the internet, and workers often see no public DNS.
        """
        for field, url in fetched_urls(request.to_body()):
            try:
                addresses.check_resolved_url(field, url, fix=_IMAGE_FIX)
            except addresses.AddressRefused as exc:
                raise VeoAddressError(str(exc)) from None

    def submit(self, request: VeoRequest) -> Submission:
        """Start a paid job; the answer holds the result too when the API answered synchronously."""
        self.check_image_hosts(request)
        path, body, read = self._submit_args(self.settings, request)
        log.info("Submitting a Veo job: POST %s (%s)", path, describe(body))
        return _submission(self._call(path, body, paid=True, read=read), path)

    def get_task(self, veo_task_id: str) -> TaskRecord:
        """One job's record (free read, retried on 429/5xx/network errors)."""
        body = {"id": veo_task_id, "action": "retrieve"}
        return TaskRecord.model_validate(self._call("/veo/tasks", body, paid=False))

    def get_tasks(self, veo_task_ids: Sequence[str]) -> list[TaskRecord]:
        """Many jobs in few calls (``retrieve_batch``, 50 ids a call)."""
        records: list[TaskRecord] = []
        for chunk in _chunks(veo_task_ids):
            body = self._call("/veo/tasks", {"ids": chunk, "action": "retrieve_batch"}, paid=False)
            records.extend(TaskBatch.model_validate(body).items)
        return records

    def download(self, url: str, destination: str | os.PathLike[str] | ObjectStoragePath) -> str:
        """Stream a video to a local path or ObjectStoragePath URL; no partial file is left behind.

        The token is not sent: video URLs are public CDN links, and may be another host.
        """
        s = self.settings
        for attempt in tenacity.Retrying(**self._retrying(s, paid=False)):
            with attempt:
                return self._download_once(s, url, destination)
        raise AssertionError("unreachable")  # pragma: no cover

    def save_video(self, status: TaskStatus, output_path: str | None) -> str | None:
        """Stream a finished job's video to ``output_path`` when one is asked for; its final path."""
        if not output_path or not status.video_url:
            return None
        log.info("Downloading the video of Veo job %s to %s", status.veo_task_id, output_path)
        return self.download(status.video_url, output_path)

    def _download_once(self, s: VeoSettings, url: str, destination: Any) -> str:
        target, shown = files.destination(destination)
        limit = int(s.max_download_mb * _MB)
        if self._video_hosts is None:
            self._video_hosts = downloads.VideoHosts(httpx.URL(s.base_url).host)
        hosts = self._video_hosts

        def too_large(size: int, streamed: bool) -> VeoDownloadTooLarge:
            return VeoDownloadTooLarge(
                f"The video at {downloads.redact(url)} {'passed' if streamed else 'is'} {size:,} bytes, more than "
                f"the {s.max_download_mb:g} MB cap ({limit:,} bytes): raise the connection extra max_download_mb "
                f"of the Veo connection {self.veo_conn_id!r} if videos this large are expected"
            )

        try:
            with download_client(hosts.connect_check) as client:
                downloads.fetch(
                    client, url, target, hosts=hosts, timeout=self._timeout(s), limit=limit, too_large=too_large
                )
        except httpx.TransportError as exc:
            raise _transport_error(exc, "GET", downloads.redact(url)) from None
        log.info("Downloaded %s to %s", downloads.redact(url), shown)
        return shown

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with one free read (an unknown task id); 401 means the token is wrong.

        One attempt with short timeouts, so an unreachable host answers in seconds. Airflow tests
        a connection under a temporary id: messages name the URL, never that id.
        """
        try:
            s = self.settings
        except Exception as exc:  # e.g. a host the settings cannot parse: the message says which field
            return False, f"{type(exc).__name__}: {exc}".replace(repr(self.veo_conn_id), "under test")
        try:
            if not s.token:
                return False, "No API token: put the AceData Cloud token in the connection's password"
            timeout = httpx.Timeout(min(s.timeout, 10.0), connect=min(s.connect_timeout, 5.0))
            self._post(s, "/veo/tasks", {"id": "airflow-connection-test", "action": "retrieve"}, timeout=timeout)
        except VeoAuthError as exc:
            return False, f"{s.base_url} refused the token: {exc.message}"
        except VeoError as exc:
            if exc.status and 400 <= exc.status < 500 and exc.status != 429:
                return True, f"Connected to {s.base_url}: token accepted"
            return False, f"{s.base_url}: {exc}".replace(repr(self.veo_conn_id), "under test")
        return True, f"Connected to {s.base_url}: token accepted"

    # ------------------------------------------------------------------ public API (async)

    async def asubmit(self, request: VeoRequest) -> Submission:
        """``submit`` without blocking the event loop."""
        await asyncio.to_thread(self.check_image_hosts, request)
        path, body, read = self._submit_args(await self.aget_settings(), request)
        log.info("Submitting a Veo job: POST %s (%s)", path, describe(body))
        return _submission(await self._acall(path, body, paid=True, read=read), path)

    async def aget_task(self, veo_task_id: str) -> TaskRecord:
        """``get_task`` without blocking the event loop (the triggerer's way)."""
        body = await self._acall("/veo/tasks", {"id": veo_task_id, "action": "retrieve"}, paid=False)
        return TaskRecord.model_validate(body)

    async def aget_tasks(self, veo_task_ids: Sequence[str]) -> list[TaskRecord]:
        """``get_tasks`` without blocking the event loop: 50 ids a ``retrieve_batch`` call."""
        records: list[TaskRecord] = []
        for chunk in _chunks(veo_task_ids):
            body = await self._acall("/veo/tasks", {"ids": chunk, "action": "retrieve_batch"}, paid=False)
            records.extend(TaskBatch.model_validate(body).items)
        return records


# ------------------------------------------------------------------------------ small helpers


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), BATCH_SIZE):
        yield ids[i : i + BATCH_SIZE]
