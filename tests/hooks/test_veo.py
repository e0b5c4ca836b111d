"""VeoHook against mocked HTTP (respx): errors, retry rules, paid-submission safety, downloads."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.support import ASYNC_TEXT, BASE_URL, SECRET_TOKEN, Chunks
from veo_provider.exceptions import (
    VeoAuthError,
    VeoBadRequestError,
    VeoError,
    VeoForbiddenError,
    VeoInsufficientBalanceError,
    VeoModerationError,
    VeoNotFoundError,
    VeoRateLimitError,
    VeoServerError,
    VeoSubmissionUncertain,
    VeoTransportError,
)
from veo_provider.hooks.veo import VeoHook, shared_async_client
from veo_provider.models import TaskState, build_request
from veo_provider.testing.payloads import DONE

TEXT = build_request("videos", action="text2video", model="veo3", prompt="a mug")


def err(status: int, code: str, message: str = "boom", **headers: str) -> httpx.Response:
    body = {"success": False, "error": {"code": code, "message": message}, "trace_id": "tr-err"}
    return httpx.Response(status, json=body, headers=headers)


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", VeoBadRequestError),
        (400, "api_not_implemented", VeoBadRequestError),
        (400, "token_mismatched", VeoAuthError),
        (400, "no_token", VeoAuthError),
        (401, "invalid_token", VeoAuthError),
        (401, "token_expired", VeoAuthError),
        (403, "used_up", VeoInsufficientBalanceError),
        (403, "disabled", VeoForbiddenError),
        (403, "forbidden", VeoModerationError),
        (404, "no_api", VeoNotFoundError),
    ],
)
def test_client_errors_are_typed_final_and_not_retried(hook, api, status, code, cls):
    route = api.post("/veo/tasks").mock(return_value=err(status, code, "the reason"))
    with pytest.raises(cls) as info:
        hook.get_task("t-1")
    assert route.call_count == 1
    exc = info.value
    assert isinstance(exc, AirflowFailException), "non-retryable errors must skip Airflow retries"
    assert (exc.status, exc.code, exc.trace_id) == (status, code, "tr-err")
    assert "the reason" in str(exc)


@pytest.mark.parametrize(("status", "code"), [(500, "api_error"), (504, "timeout"), (429, "too_many_requests")])
def test_transient_errors_are_retryable_and_not_final(hook, api, status, code):
    api.post("/veo/tasks").mock(return_value=err(status, code))
    with pytest.raises(VeoError) as info:
        hook.get_task("t-1")
    assert info.value.retryable
    assert not isinstance(info.value, AirflowFailException)
    assert isinstance(info.value, VeoRateLimitError if status == 429 else VeoServerError)


def test_error_inside_a_200_answer_is_raised_by_its_code(hook, api):
    api.post("/veo/tasks").mock(return_value=err(200, "used_up"))
    with pytest.raises(VeoInsufficientBalanceError):
        hook.get_task("t-1")


def test_non_json_answer_is_a_server_error(hook, api):
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(VeoServerError, match="without a JSON object"):
        hook.get_task("t-1")


def test_missing_token_fails_before_any_http(hook, api, veo_conn):
    veo_conn(token="")
    route = api.post("/veo/videos")
    with pytest.raises(VeoAuthError, match="has no API token"):
        VeoHook().submit(TEXT)
    assert route.call_count == 0


# --------------------------------------------------------------------------- read retries


def test_read_retries_429_then_succeeds(hook, api):
    route = api.post("/veo/tasks").mock(
        side_effect=[err(429, "too_many_requests"), err(503, "api_error"), httpx.Response(200, json={"id": "t-1"})]
    )
    assert hook.get_task("t-1").id == "t-1"
    assert route.call_count == 3


def test_read_honours_retry_after(hook, api):
    route = api.post("/veo/tasks").mock(
        side_effect=[err(429, "too_many_requests", **{"Retry-After": "1"}), httpx.Response(200, json={"id": "t"})]
    )
    start = time.monotonic()
    hook.get_task("t")
    assert time.monotonic() - start >= 1.0
    assert route.call_count == 2


def test_read_retries_transport_errors(hook, api):
    route = api.post("/veo/tasks").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(200, json={"id": "t"})]
    )
    assert hook.get_task("t").id == "t"
    assert route.call_count == 3


def test_read_gives_up_after_max_retries(hook, api, veo_conn):
    veo_conn(max_retries=3)
    route = api.post("/veo/tasks").mock(return_value=err(500, "api_error"))
    with pytest.raises(VeoServerError):
        VeoHook(retry_wait_initial=0.01).get_task("t")
    assert route.call_count == 3


# --------------------------------------------------------------------------- paid submissions


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
        err(500, "api_error"),
        err(502, "bad_gateway"),
        err(504, "timeout"),
    ],
    ids=["read-timeout", "write-timeout", "disconnect", "reset", "500", "502", "504"],
)
def test_submit_is_not_resent_when_it_may_have_arrived(hook, api, failure):
    kwargs = {"side_effect": failure} if isinstance(failure, Exception) else {"return_value": failure}
    route = api.post("/veo/videos").mock(**kwargs)
    with pytest.raises(VeoSubmissionUncertain, match="not resent") as info:
        hook.submit(ASYNC_TEXT)
    assert route.call_count == 1
    assert isinstance(info.value, AirflowFailException)
    assert isinstance(info.value.cause, VeoServerError | VeoTransportError)


def test_submit_is_resent_when_it_provably_did_not_arrive(hook, api):
    route = api.post("/veo/videos").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("no route"),
            err(429, "too_many_requests"),
            httpx.Response(200, json={"task_id": "t-9"}),
        ]
    )
    sub = hook.submit(ASYNC_TEXT)
    assert (sub.veo_task_id, sub.result, sub.status.state) == ("t-9", None, TaskState.PENDING)
    assert route.call_count == 4


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("[Errno 111] Connection refused"), httpx.ConnectError("Name or service not known")]
)
def test_an_unreachable_api_names_the_connection_and_its_base_url(hook, api, failure):
    api.post("/veo/videos").mock(side_effect=failure)
    with pytest.raises(VeoTransportError) as info:
        hook.submit(ASYNC_TEXT)
    message = str(info.value)
    assert f"Cannot reach the Veo API at {BASE_URL} (Veo connection 'veo_default')" in message
    assert "Check the connection's Base URL (host)" in message and str(failure) in message
    assert info.value.retryable and not info.value.sent, "provably not sent: Airflow's retry may submit again"
    assert not isinstance(info.value, AirflowFailException)


def test_a_header_httpx_refuses_is_never_echoed(hook, api):
    """httpx quotes the offending header value, and the Authorization header holds the token."""
    api.post("/veo/tasks").mock(side_effect=httpx.LocalProtocolError(f"Illegal header value b'Bearer {SECRET_TOKEN}'"))
    with pytest.raises(VeoTransportError) as info:
        hook.get_task("t-1")
    assert SECRET_TOKEN not in str(info.value) and "a header value is not valid" in str(info.value)


def test_the_connection_test_refuses_a_token_with_a_newline_without_echoing_it(veo_conn, api):
    veo_conn(token=f"{SECRET_TOKEN}\nX-Injected: 1")
    route = api.post("/veo/tasks")
    ok, message = VeoHook().test_connection()
    assert not ok and "a control character" in message and "one line" in message
    assert SECRET_TOKEN not in message and "X-Injected" not in message and route.call_count == 0


def test_submit_4xx_is_final_and_sent_once(hook, api):
    route = api.post("/veo/videos").mock(return_value=err(403, "forbidden", "moderation refused the prompt"))
    with pytest.raises(VeoModerationError, match="moderation refused"):
        hook.submit(ASYNC_TEXT)
    assert route.call_count == 1


def test_submit_sync_answer_carries_the_result(hook, api):
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json=DONE))
    sub = hook.submit(TEXT)
    assert sub.veo_task_id == "t-1" and sub.trace_id == "tr-1"
    assert sub.status.state is TaskState.SUCCEEDED
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {SECRET_TOKEN}"
    assert sent.headers["accept"] == "application/json"
    assert httpx.Response(200, content=sent.content).json() == {
        "action": "text2video",
        "model": "veo3",
        "prompt": "a mug",
    }


def test_submit_sends_the_configured_1080p_spelling(hook, api, veo_conn):
    veo_conn(get1080p_action="get_1080p")
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t"}))
    VeoHook().submit(build_request("videos", action="get1080p", video_id="v-1", **{"async": True}))
    assert b'"action":"get_1080p"' in route.calls.last.request.content.replace(b" ", b"")


def test_submit_answer_without_task_id_is_uncertain(hook, api):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"success": True}))
    with pytest.raises(VeoSubmissionUncertain, match="no task_id"):
        hook.submit(ASYNC_TEXT)


# --------------------------------------------------------------------------- batch


def test_get_tasks_is_chunked_by_50(hook, api):
    def answer(request: httpx.Request) -> httpx.Response:
        import json

        ids = json.loads(request.content)["ids"]
        assert len(ids) <= 50
        return httpx.Response(200, json={"items": [{"id": i} for i in ids], "count": len(ids)})

    route = api.post("/veo/tasks").mock(side_effect=answer)
    records = hook.get_tasks([f"t-{i}" for i in range(120)])
    assert [r.id for r in records] == [f"t-{i}" for i in range(120)]
    assert route.call_count == 3


# --------------------------------------------------------------------------- secrets


def test_token_never_appears_in_logs_errors_or_reprs(hook, api, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    api.post("/veo/videos").mock(side_effect=httpx.ReadTimeout("timed out"))
    api.post("/veo/tasks").mock(side_effect=[err(500, "api_error")] * 4 + [err(401, "invalid_token")])
    texts = [repr(hook), str(hook.settings), repr(hook.settings)]
    for call in (lambda: hook.submit(ASYNC_TEXT), lambda: hook.get_task("t")):
        with pytest.raises(VeoError) as info:
            call()
        texts += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err]
    assert caplog.records, "the calls above should have logged"
    for text in texts:
        assert SECRET_TOKEN not in text


# --------------------------------------------------------------------------- downloads


def test_download_streams_to_a_local_path(hook, tmp_path):
    with respx.mock:
        respx.get("https://cdn.example/v.mp4").mock(return_value=httpx.Response(200, content=b"\x00ftyp" * 100))
        path = hook.download("https://cdn.example/v.mp4", tmp_path / "sub" / "v.mp4")
        assert "authorization" not in respx.calls.last.request.headers, "the token must not go to the CDN"
    assert Path(path).read_bytes() == b"\x00ftyp" * 100
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "v.mp4"]


def test_a_signed_download_link_never_reaches_the_logs(hook, tmp_path, caplog):
    signed = "https://cdn.example/v.mp4?X-Amz-Signature=SIGNED-SECRET-123&X-Amz-Credential=AKIA-SECRET"
    with respx.mock, caplog.at_level(logging.DEBUG):
        respx.get(signed).mock(return_value=httpx.Response(200, content=b"\x00ftyp" * 100))
        hook.download(signed, tmp_path / "v.mp4")
    assert "cdn.example/v.mp4" in caplog.text, "httpx's request line is still logged"
    assert "SECRET" not in caplog.text


def test_download_to_object_storage_url(hook, tmp_path):
    with respx.mock:
        respx.get("https://cdn.example/v.mp4").mock(return_value=httpx.Response(200, content=b"video"))
        path = hook.download("https://cdn.example/v.mp4", f"file://{tmp_path}/2025-01-01/0.mp4")
    assert Path(path.removeprefix("file://")).read_bytes() == b"video"


def test_download_to_a_remote_object_store(hook):
    import fsspec
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # stands in for s3://, gs://, ...

    with respx.mock:
        respx.get("https://cdn.example/v.mp4").mock(return_value=httpx.Response(200, content=b"remote video"))
        path = hook.download("https://cdn.example/v.mp4", "memory://veo-bucket/2025/0.mp4")
    target = ObjectStoragePath("memory://veo-bucket/2025/0.mp4")
    assert target.read_bytes() == b"remote video" and path.endswith("veo-bucket/2025/0.mp4")
    assert not ObjectStoragePath("memory://veo-bucket/2025/0.mp4.part").exists()


def test_failed_download_leaves_no_partial_file(hook, tmp_path):
    def broken():
        yield b"x" * 1000
        raise httpx.ReadError("connection cut")

    with respx.mock:
        route = respx.get("https://cdn.example/v.mp4").mock(
            side_effect=lambda request: httpx.Response(200, stream=Chunks(broken()))
        )
        with pytest.raises(VeoTransportError):
            hook.download("https://cdn.example/v.mp4", tmp_path / "v.mp4")
    assert route.call_count == 5, "downloads are reads: retried"
    assert list(tmp_path.iterdir()) == []


def test_download_404_is_final(hook, tmp_path):
    with respx.mock:
        respx.get("https://cdn.example/v.mp4").mock(return_value=httpx.Response(404, text="gone"))
        with pytest.raises(VeoNotFoundError):
            hook.download("https://cdn.example/v.mp4", tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_download_memory_stays_flat_for_a_large_body(hook, tmp_path):
    size = 64 * 1024 * 1024
    chunk = b"\x01" * (256 * 1024)

    def body():
        for _ in range(size // len(chunk)):
            yield chunk

    with respx.mock:
        respx.get("https://cdn.example/big.mp4").mock(
            side_effect=lambda request: httpx.Response(200, stream=Chunks(body()))
        )
        tracemalloc.start()
        try:
            path = hook.download("https://cdn.example/big.mp4", tmp_path / "big.mp4")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert Path(path).stat().st_size == size
    assert peak < 8 * 1024 * 1024, f"download held {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB body"


# --------------------------------------------------------------------------- connection test


def test_test_connection_reports_a_bad_token(hook, api):
    api.post("/veo/tasks").mock(return_value=err(401, "invalid_token", "token is invalid"))
    ok, message = hook.test_connection()
    assert not ok and "token is invalid" in message and SECRET_TOKEN not in message


def test_test_connection_accepts_an_unknown_task_answer(hook, api):
    api.post("/veo/tasks").mock(return_value=err(404, "not_found"))
    assert hook.test_connection() == (True, f"Connected to {BASE_URL}: token accepted")


def test_connection_host_without_scheme_and_defaults(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VEO_A", '{"conn_type": "veo", "password": "x"}')
    monkeypatch.setenv("AIRFLOW_CONN_VEO_B", '{"conn_type": "veo", "host": "127.0.0.1", "port": 8089, "password": "x"}')
    monkeypatch.setenv("AIRFLOW_CONN_VEO_C", '{"conn_type": "veo", "password": "x", "extra": {"timeout": "abc"}}')
    assert VeoHook("veo_a").settings.base_url == "https://api.acedata.cloud"
    assert VeoHook("veo_b").settings.base_url == "http://127.0.0.1:8089"
    with pytest.raises(ValueError, match="'timeout' must be a number"):
        VeoHook("veo_c").settings  # noqa: B018


# --------------------------------------------------------------------------- async


async def test_async_read_retries_and_parses(hook, api):
    route = api.post("/veo/tasks").mock(side_effect=[err(502, "api_error"), httpx.Response(200, json={"id": "t"})])
    record = await hook.aget_task("t")
    assert record.id == "t" and route.call_count == 2


async def test_async_submit_is_not_resent_after_read_timeout(hook, api):
    route = api.post("/veo/videos").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(VeoSubmissionUncertain):
        await hook.asubmit(ASYNC_TEXT)
    assert route.call_count == 1


async def test_async_batch(hook, api):
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json={"items": [{"id": "a"}, {"id": "b"}]}))
    assert [r.id for r in await hook.aget_tasks(["a", "b"])] == ["a", "b"]


async def test_async_hooks_share_one_client_per_event_loop(veo_conn):
    assert shared_async_client() is shared_async_client()


async def test_the_shared_client_keeps_its_connection_from_one_poll_tick_to_the_next(veo_conn):
    """httpx drops an idle connection after 5 s: every 15 s tick would pay a new TLS handshake."""
    import inspect

    from veo_provider.operators.veo import VeoOperator

    poll_interval = inspect.signature(VeoOperator.__init__).parameters["poll_interval"].default
    pool = shared_async_client()._transport._pool  # httpcore's pool: httpx has no public getter
    assert pool._keepalive_expiry > poll_interval


async def test_async_settings_without_the_newer_compat_helper(veo_conn, monkeypatch):
    """Python 3.10 only gets common-compat 1.20, which has no get_async_extra_dejson."""
    import airflow.providers.common.compat.connection as compat

    monkeypatch.delattr(compat, "get_async_extra_dejson", raising=False)
    veo_conn(timeout=7)
    settings = await VeoHook().aget_settings()
    assert settings.timeout == 7 and settings.base_url == BASE_URL


def test_test_connection_makes_one_attempt_with_short_timeouts(hook, api):
    """An unreachable host used to take every read retry (about a minute) before answering."""
    route = api.post("/veo/tasks").mock(side_effect=httpx.ConnectError("connection refused"))
    ok, message = hook.test_connection()
    assert not ok and route.call_count == 1 and BASE_URL in message
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout["connect"] <= 5 and timeout["read"] <= 10


def test_test_connection_never_names_airflows_temporary_connection_id(monkeypatch, api):
    """Airflow tests a connection under a random id: a message naming it confuses the user."""
    from tests.support import conn_json

    monkeypatch.setenv("AIRFLOW_CONN_TMPX7Q2", conn_json(token=""))
    ok, message = VeoHook("tmpx7q2").test_connection()
    assert not ok and "password" in message and "tmpx7q2" not in message.lower()
