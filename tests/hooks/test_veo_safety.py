"""VeoHook safety edges: unsent submissions, cookies, redirects, download files and caps, URLs."""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException, Connection

from tests.support import ASYNC_TEXT, SECRET_TOKEN, Chunks
from veo_provider.exceptions import (
    VeoDownloadTooLarge,
    VeoError,
    VeoRedirectError,
    VeoSubmissionUncertain,
    VeoTransportError,
)
from veo_provider.hooks.veo import VeoHook
from veo_provider.settings import DEFAULT_BASE_URL, VeoSettings

CDN = "https://cdn.example/v.mp4"
MB = 1024 * 1024


def _files(directory: Path) -> list[str]:
    """Every entry, hidden ones included (temporary files start with a dot)."""
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------- 1. unsent paid submissions

NOT_SENT = [httpx.ConnectError("refused"), httpx.ConnectTimeout("no route"), httpx.PoolTimeout("pool full")]
NOT_SENT_IDS = ["connect-error", "connect-timeout", "pool-timeout"]


def _assert_plain_transport_error(exc: BaseException) -> None:
    assert type(exc) is VeoTransportError, f"expected the transport error itself, got {type(exc).__name__}"
    assert exc.sent is False and exc.retryable
    assert not isinstance(exc, AirflowFailException), "an unsent submission may be retried by Airflow"


@pytest.mark.parametrize("failure", NOT_SENT, ids=NOT_SENT_IDS)
def test_submit_that_never_left_raises_the_transport_error_not_uncertain(hook, api, failure):
    route = api.post("/veo/videos").mock(side_effect=failure)
    with pytest.raises(VeoTransportError) as info:
        hook.submit(ASYNC_TEXT)
    _assert_plain_transport_error(info.value)
    assert route.call_count == 5, "unsent submissions are retried up to max_retries"


@pytest.mark.parametrize("failure", NOT_SENT, ids=NOT_SENT_IDS)
async def test_async_submit_that_never_left_raises_the_transport_error_not_uncertain(hook, api, failure):
    route = api.post("/veo/videos").mock(side_effect=failure)
    with pytest.raises(VeoTransportError) as info:
        await hook.asubmit(ASYNC_TEXT)
    _assert_plain_transport_error(info.value)
    assert route.call_count == 5


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_submit_that_may_have_arrived_after_connect_errors_is_still_uncertain(hook, api, asynchronous):
    route = api.post("/veo/videos").mock(side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    with pytest.raises(VeoSubmissionUncertain):
        await hook.asubmit(ASYNC_TEXT) if asynchronous else hook.submit(ASYNC_TEXT)
    assert route.call_count == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("network", ["dns-failure", "connection-refused"])
async def test_real_unsent_failures_are_classified_not_sent(veo_conn, monkeypatch, network, asynchronous):
    """Through the real httpx transport (no respx): DNS failures surface as ConnectError."""
    if network == "dns-failure":

        def no_dns(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", no_dns)
        veo_conn(host="https://veo-api.invalid", max_retries=2)
    else:
        veo_conn(host=f"http://127.0.0.1:{_closed_port()}", max_retries=2)
    hook = VeoHook(retry_wait_initial=0.01, retry_wait_max=0.02)
    with pytest.raises(VeoTransportError) as info:
        await hook.asubmit(ASYNC_TEXT) if asynchronous else hook.submit(ASYNC_TEXT)
    _assert_plain_transport_error(info.value)
    assert "ConnectError" in str(info.value)
    hook.close()


# --------------------------------------------------------------------- 2. no cookies


def _cookie_answers() -> list[httpx.Response]:
    first = httpx.Response(200, json={"id": "t"}, headers={"set-cookie": "session=of-token-a; Path=/"})
    return [first, httpx.Response(200, json={"id": "t"})]


def test_sync_client_neither_keeps_nor_sends_cookies(hook, api):
    route = api.post("/veo/tasks").mock(side_effect=_cookie_answers())
    hook.get_task("t")
    hook.get_task("t")
    assert "cookie" not in route.calls[1].request.headers
    assert len(hook.get_conn().cookies) == 0


async def test_shared_async_client_sends_no_cookie_of_one_token_with_another(veo_conn, api):
    veo_conn(conn_id="veo_a", token="tok-a")
    veo_conn(conn_id="veo_b", token="tok-b")
    route = api.post("/veo/tasks").mock(side_effect=_cookie_answers())
    await VeoHook("veo_a").aget_task("t")
    await VeoHook("veo_b").aget_task("t")
    second = route.calls[1].request
    assert second.headers["authorization"] == "Bearer tok-b"
    assert "cookie" not in second.headers, "a cookie set on token A's call was sent with token B"


# --------------------------------------------------------------------- 3. redirects


def _loop(request: httpx.Request) -> httpx.Response:
    return httpx.Response(307, headers={"location": str(request.url)})


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_redirect_loop_on_a_read_is_a_final_veo_error(hook, api, asynchronous):
    route = api.post("/veo/tasks").mock(side_effect=_loop)
    with pytest.raises(VeoRedirectError, match="redirected more than 5 times") as info:
        await hook.aget_task("t") if asynchronous else hook.get_task("t")
    assert isinstance(info.value, VeoError) and isinstance(info.value, AirflowFailException)
    assert route.call_count == 6, "one request and at most 5 redirects, not retried"


def test_redirect_loop_on_download_is_a_final_veo_error(hook, tmp_path):
    with respx.mock:
        route = respx.get(CDN).mock(
            side_effect=lambda request: httpx.Response(302, headers={"location": CDN + "?sig=secret-sig"})
        )
        with pytest.raises(VeoRedirectError) as info:
            hook.download(CDN, tmp_path / "v.mp4")
    assert route.call_count == 6
    assert "secret-sig" not in str(info.value)
    assert _files(tmp_path) == []


# --------------------------------------------------------------------- 4. download files and caps


def test_download_does_not_follow_a_symlink_planted_at_the_old_part_name(hook, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (tmp_path / "v.mp4.part").symlink_to(victim)
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(200, content=b"video"))
        hook.download(CDN, tmp_path / "v.mp4")
    assert victim.read_bytes() == b"precious"
    target = tmp_path / "v.mp4"
    assert not target.is_symlink() and target.read_bytes() == b"video"
    assert _files(tmp_path) == ["v.mp4", "v.mp4.part", "victim.txt"]


def test_two_parallel_downloads_to_one_target_end_with_one_whole_file(veo_conn, tmp_path):
    size, chunk = 4 * MB, 256 * 1024
    both_writing = threading.Barrier(2, timeout=5)
    letters = iter(b"AB")
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            letter = bytes([next(letters)])

        def body():
            yield letter * chunk
            both_writing.wait()  # both downloads are half-written at the same time
            for _ in range(size // chunk - 1):
                yield letter * chunk

        return httpx.Response(200, stream=Chunks(body()))

    target = tmp_path / "v.mp4"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with VeoHook(retry_wait_initial=0.01) as hook:
                hook.download(CDN, target)
        except BaseException as exc:
            errors.append(exc)

    with respx.mock:
        respx.get(CDN).mock(side_effect=answer)
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert errors == []
    data = target.read_bytes()
    assert len(data) == size and data in (b"A" * size, b"B" * size), "the file mixes two downloads"
    assert _files(tmp_path) == ["v.mp4"]


def test_download_refused_before_streaming_when_content_length_is_over_the_default_cap(hook, tmp_path):
    def never_read():
        raise AssertionError("the body must not be streamed")
        yield b""  # pragma: no cover

    five_gib = 5 * 1024 * MB
    with respx.mock:
        route = respx.get(CDN).mock(
            side_effect=lambda request: httpx.Response(
                200, headers={"content-length": str(five_gib)}, stream=Chunks(never_read())
            )
        )
        with pytest.raises(VeoDownloadTooLarge) as info:
            hook.download(CDN, tmp_path / "v.mp4")
    message = str(info.value)
    assert f"{five_gib:,} bytes" in message and "4096 MB" in message and "max_download_mb" in message
    assert isinstance(info.value, AirflowFailException) and route.call_count == 1, "final: not retried"
    assert _files(tmp_path) == []


def test_download_aborted_mid_stream_when_bytes_pass_the_cap(veo_conn, tmp_path):
    veo_conn(max_download_mb=1)
    pulled = []

    def body():  # no Content-Length: only counting the bytes can stop it
        for i in range(64):
            pulled.append(i)
            yield b"x" * (256 * 1024)

    with respx.mock:
        respx.get(CDN).mock(side_effect=lambda request: httpx.Response(200, stream=Chunks(body())))
        with pytest.raises(VeoDownloadTooLarge, match="raise the connection extra max_download_mb") as info:
            VeoHook(retry_wait_initial=0.01).download(CDN, tmp_path / "v.mp4")
    assert len(pulled) <= 8, "stopped within one 1 MB read chunk past the cap, not at the end of 16 MB"
    assert "1 MB cap" in str(info.value)
    assert _files(tmp_path) == []


def test_download_cap_extra_is_validated(veo_conn):
    veo_conn(max_download_mb=0)
    with pytest.raises(ValueError, match="'max_download_mb' must be positive"):
        VeoHook().settings  # noqa: B018
    veo_conn(max_download_mb="lots")
    with pytest.raises(ValueError, match="'max_download_mb' must be a number of MB"):
        VeoHook().settings  # noqa: B018
    veo_conn(max_download_mb="2.5")
    assert VeoHook().settings.max_download_mb == 2.5


@pytest.mark.parametrize("failure", ["transport", "too-large"])
def test_error_mid_stream_keeps_the_old_target_and_leaves_no_temp_file(veo_conn, tmp_path, failure):
    veo_conn(max_download_mb=1, max_retries=2)
    target = tmp_path / "v.mp4"
    target.write_bytes(b"the previous video")

    def body():
        yield b"x" * (768 * 1024)
        if failure == "transport":
            raise httpx.ReadError("connection cut")
        yield b"x" * (768 * 1024)

    with respx.mock:
        respx.get(CDN).mock(side_effect=lambda request: httpx.Response(200, stream=Chunks(body())))
        with pytest.raises(VeoTransportError if failure == "transport" else VeoDownloadTooLarge):
            VeoHook(retry_wait_initial=0.01).download(CDN, target)
    assert target.read_bytes() == b"the previous video"
    assert _files(tmp_path) == ["v.mp4"]


@pytest.fixture
def memory_dir():
    import fsspec
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # stands in for s3://, gs://, ...
    return ObjectStoragePath(f"memory://veo-{uuid.uuid4().hex}/2025")


def _keys(directory) -> list[str]:
    return sorted(Path(p).name for p in directory.fs.find(directory.path))


def test_download_to_an_object_store_leaves_another_writers_part_key_alone(hook, memory_dir):
    other = memory_dir / "0.mp4.part"
    other.write_bytes(b"another writer's upload")
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(200, content=b"remote video"))
        path = hook.download(CDN, memory_dir / "0.mp4")
    assert path == str(memory_dir / "0.mp4")
    assert (memory_dir / "0.mp4").read_bytes() == b"remote video"
    assert other.read_bytes() == b"another writer's upload"
    assert _keys(memory_dir) == ["0.mp4", "0.mp4.part"]


def test_failed_download_to_an_object_store_leaves_no_key(veo_conn, memory_dir):
    veo_conn(max_download_mb=1)
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(200, content=b"x" * (2 * MB)))
        with pytest.raises(VeoDownloadTooLarge):
            VeoHook().download(CDN, str(memory_dir / "0.mp4"))
        with pytest.raises(VeoDownloadTooLarge):  # Content-Length lies low: caught by counting
            respx.get(CDN).mock(
                side_effect=lambda request: httpx.Response(
                    200, headers={"content-length": "10"}, stream=Chunks(iter([b"x" * (2 * MB)]))
                )
            )
            VeoHook().download(CDN, str(memory_dir / "0.mp4"))
    assert _keys(memory_dir) == []


# --------------------------------------------------------------------- 5. callback_base_url


@pytest.mark.parametrize(
    "value",
    [
        "http://localhost:8080/veo",
        "http://127.0.0.1/veo",
        "http://127.9.8.7:8080/veo",
        "http://[::1]:8080/veo",
        "https://airflow.example.com/veo",
        "https://airflow.example.com/veo/",
    ],
)
def test_callback_base_url_accepts_https_and_loopback_http(veo_conn, value):
    veo_conn(callback_base_url=value)
    assert VeoHook().settings.callback_base_url == value.rstrip("/")


@pytest.mark.parametrize(
    "value",
    [
        "http://airflow.example.com/veo",
        "http://10.0.0.5:8080/veo",
        "http://localhost.example.com/veo",
        "airflow.example.com/veo",
        "ftp://airflow.example.com/veo",
    ],
)
def test_callback_base_url_refuses_plain_http_to_other_hosts(veo_conn, value):
    veo_conn(callback_base_url=value)
    with pytest.raises(ValueError) as info:
        VeoHook().settings  # noqa: B018
    message = str(info.value)
    assert "'callback_base_url'" in message and repr(value) in message
    assert "https://" in message and "loopback http URL for local testing" in message
    assert SECRET_TOKEN not in message


# --------------------------------------------------------------------- 6. connection host


def _settings(host: str | None, port: int | None = None) -> VeoSettings:
    conn = Connection(conn_id="veo_x", conn_type="veo", host=host, port=port, password=SECRET_TOKEN)
    return VeoSettings.from_connection(conn, {})


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_BASE_URL),
        ("  https://api.acedata.cloud/  ", None, DEFAULT_BASE_URL),
        ("localhost:8089", None, "http://localhost:8089"),
        ("localhost", 8089, "http://localhost:8089"),
        ("127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("127.0.0.1", 8089, "http://127.0.0.1:8089"),
        ("[::1]:8089", None, "http://[::1]:8089"),
        ("[::1]", 8089, "http://[::1]:8089"),
        ("::1", 8089, "http://[::1]:8089"),
        ("https://[2001:db8::1]:8443/api", None, "https://[2001:db8::1]:8443/api"),
        ("[2001:db8::1]", 8443, "https://[2001:db8::1]:8443"),
        ("api.example.com", None, "https://api.example.com"),
        ("api.example.com/", None, "https://api.example.com"),
        ("api.example.com", 8443, "https://api.example.com:8443"),
        ("x402.acedata.cloud/prefix/v1/", 8443, "https://x402.acedata.cloud:8443/prefix/v1"),
        ("https://gw.example.com/prefix/", None, "https://gw.example.com/prefix"),
        ("http://localhost:9000", 8089, "http://localhost:9000"),
        ("HTTPS://API.Example.com", None, "https://api.example.com"),
    ],
)
def test_connection_host_shapes(host, port, expected):
    assert _settings(host, port).base_url == expected


@pytest.mark.parametrize(
    "host",
    [
        "alice:s3cr3t-pw@api.example.com",
        "https://alice:s3cr3t-pw@api.example.com/v1",
        "https://s3cr3t-pw@api.example.com",
        "https://alice:s3c/r3t-pw@api.example.com",
    ],
)
def test_connection_host_with_user_info_is_refused_without_echoing_it(host):
    with pytest.raises(ValueError) as info:
        _settings(host)
    message = str(info.value)
    assert "host" in message and "put the token in the password field" in message
    assert "s3c" not in message and "alice" not in message


@pytest.mark.parametrize("host", ["ftp://api.example.com", "https://api.example.com/v1?key=1", "http://"])
def test_connection_host_that_is_no_http_base_url_is_refused(host):
    with pytest.raises(ValueError, match="host \\(Base URL\\) of the Veo connection 'veo_x'"):
        _settings(host)
