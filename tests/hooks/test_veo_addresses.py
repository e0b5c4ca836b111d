"""The address policy at the hook: downloads, their redirect hops, image hosts, and API redirects.

A real server on 127.0.0.1 stands for an internal service (``/secret``): against a public-looking
API host no download may reach it, by any URL, redirect or DNS answer, and nothing is written.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import respx

from tests.conftest import BASE_URL, SECRET_TOKEN
from tests.hooks.test_veo import ASYNC_TEXT
from tests.test_addresses import fake_dns
from veo_provider.exceptions import VeoAddressError, VeoError, VeoRedirectError, VeoTransportError
from veo_provider.hooks.veo import VeoHook
from veo_provider.models import build_request

CDN = "https://cdn.example/v.mp4"
SECRET = b"internal-secret: the worker's private network"


class Internal:
    """An HTTP server on 127.0.0.1 that counts what reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "video/mp4")
                self.send_header("content-length", str(len(SECRET)))
                self.end_headers()
                self.wfile.write(SECRET)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/secret"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here depends on this machine's DNS: names fail like NXDOMAIN unless a test answers them."""
    fake_dns(monkeypatch, {})


@pytest.fixture
def internal() -> Iterator[Internal]:
    server = Internal()
    yield server
    server.close()


def hook() -> VeoHook:
    return VeoHook(retry_wait_initial=0.01, retry_wait_max=0.02)


def nothing_written(directory: Path) -> bool:
    return list(directory.iterdir()) == []


# --------------------------------------------------------------- downloads: a public API host


def test_a_redirect_to_loopback_is_refused_before_any_byte_is_written(veo_conn, internal, tmp_path):
    """The reported hole: a 302 from the CDN to 127.0.0.1 was fetched and written as the video."""
    with respx.mock:
        respx.route(host="127.0.0.1").pass_through()
        cdn = respx.get(CDN).mock(return_value=httpx.Response(302, headers={"location": internal.url}))
        with pytest.raises(VeoAddressError, match=r"redirect 1 of video_url .*loopback address 127\.0\.0\.1") as info:
            hook().download(CDN, tmp_path / "v.mp4")
    assert cdn.call_count == 1, "a refusal is final: not retried"
    assert internal.paths == [] and nothing_written(tmp_path)
    assert "Base URL is loopback or private" in str(info.value)


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.8/v.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://0x7f.1:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://127.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://127.0.0.1.nip.io:{port}/secret",
        "file:///etc/passwd",
    ],
)
def test_every_redirect_hop_is_checked(veo_conn, internal, tmp_path, location):
    hops = ["https://cdn.example/a", "https://cdn2.example/b", location.format(port=internal.port)]
    with respx.mock:
        respx.route(host="127.0.0.1").pass_through()
        respx.get(CDN).mock(return_value=httpx.Response(302, headers={"location": hops[0]}))
        respx.get(hops[0]).mock(return_value=httpx.Response(301, headers={"location": hops[1]}))
        respx.get(hops[1]).mock(return_value=httpx.Response(307, headers={"location": hops[2]}))
        with pytest.raises(VeoAddressError, match="redirect 3 of video_url"):
            hook().download(CDN, tmp_path / "v.mp4")
    assert internal.paths == [] and nothing_written(tmp_path)


@pytest.mark.parametrize("url", ["http://10.1.2.3/v.mp4", "http://169.254.169.254/v.mp4", "http://[fd00::5]/v.mp4"])
def test_a_private_video_url_is_refused_without_a_connection(veo_conn, tmp_path, url):
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        route = mock.route()
        with pytest.raises(VeoAddressError, match=r"^video_url '.*' must be a public http\(s\) URL"):
            hook().download(url, tmp_path / "v.mp4")
    assert route.call_count == 0 and nothing_written(tmp_path)


def test_a_video_host_whose_name_resolves_to_loopback_is_refused_at_connect(veo_conn, internal, tmp_path, monkeypatch):
    """Through the real transport: the name passes the text check, its DNS answer does not."""
    asked = fake_dns(monkeypatch, {"cdn.example": ["127.0.0.1"]})
    with pytest.raises(VeoAddressError, match=r"'cdn\.example' resolves to the loopback address 127\.0\.0\.1"):
        hook().download(f"http://cdn.example:{internal.port}/secret", tmp_path / "v.mp4")
    assert internal.paths == [] and nothing_written(tmp_path)
    assert asked.count("cdn.example") == 1, "the video host was looked up more than once"


def test_the_connection_goes_to_the_address_that_was_checked(veo_conn, tmp_path, monkeypatch):
    """No DNS rebinding window: one answer is checked and that address is connected to."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in next(answers)]

    connected: list[tuple[str, int]] = []

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError("stop here")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    veo_conn(max_retries=1)
    with pytest.raises(VeoTransportError, match="ConnectError"):
        hook().download("https://cdn.example/v.mp4", tmp_path / "v.mp4")
    assert lookups == ["cdn.example"] and connected == [("93.184.216.34", 443)]


def test_an_unresolvable_video_host_is_a_retryable_connect_error(veo_conn, tmp_path, monkeypatch):
    fake_dns(monkeypatch, {})
    veo_conn(max_retries=2)
    with pytest.raises(VeoTransportError, match=r"could not resolve the video host 'cdn\.example'") as info:
        hook().download(CDN, tmp_path / "v.mp4")
    assert info.value.retryable and nothing_written(tmp_path)


# --------------------------------------------------------------- downloads: a loopback/private API host


def test_a_loopback_api_host_may_download_from_loopback(veo_conn, internal, tmp_path):
    """The emulator's case: its API and its videos are both on 127.0.0.1."""
    veo_conn(host=f"http://127.0.0.1:{internal.port}")
    path = hook().download(internal.url, tmp_path / "v.mp4")
    assert Path(path).read_bytes() == SECRET and internal.paths == ["/secret"]


def test_a_private_gateway_api_host_may_download_from_a_name_resolving_to_private(
    veo_conn, internal, tmp_path, monkeypatch
):
    fake_dns(monkeypatch, {"veo-gw.corp.example": ["10.0.0.2"], "videos.corp.example": ["127.0.0.1"]})
    veo_conn(host="https://veo-gw.corp.example")
    path = hook().download(f"http://videos.corp.example:{internal.port}/secret", tmp_path / "v.mp4")
    assert Path(path).read_bytes() == SECRET


def test_a_loopback_api_host_still_never_downloads_from_metadata_addresses(veo_conn, tmp_path):
    veo_conn(host="http://127.0.0.1:8089")
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        route = mock.route()
        with pytest.raises(VeoAddressError, match=r"link-local address 169\.254\.169\.254"):
            hook().download("http://169.254.169.254/latest/meta-data/", tmp_path / "v.mp4")
    assert route.call_count == 0


# --------------------------------------------------------------- downloads: encoding


def test_downloads_ask_for_identity_encoding(veo_conn, tmp_path):
    with respx.mock:
        route = respx.get(CDN).mock(
            return_value=httpx.Response(200, content=b"v", headers={"content-type": "video/mp4"})
        )
        hook().download(CDN, tmp_path / "v.mp4")
    assert route.calls.last.request.headers["accept-encoding"] == "identity"


def test_a_compressed_answer_is_refused_before_it_is_inflated(veo_conn, tmp_path):
    import gzip

    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MB in ~8 KB: one network chunk
    headers = {"content-type": "video/mp4", "content-encoding": "gzip"}
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(200, content=bomb, headers=headers))
        with pytest.raises(VeoError, match="Content-Encoding 'gzip'"):
            hook().download(CDN, tmp_path / "v.mp4")
    assert nothing_written(tmp_path)


# --------------------------------------------------------------- image hosts (the vendor fetches them)


def test_image_hosts_resolving_to_private_addresses_are_refused_before_submitting(veo_conn, api, monkeypatch):
    fake_dns(monkeypatch, {"images.corp.example": ["10.4.4.4"]})
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t"}))
    request = build_request(
        "videos",
        action="image2video",
        prompt="a mug",
        image_urls=["https://cdn.example/a.png", "https://images.corp.example/b.png"],
        **{"async": True},
    )
    with pytest.raises(VeoAddressError, match=r"image_urls\[1\] .*private address 10\.4\.4\.4"):
        hook().submit(request)
    assert post.call_count == 0


# --------------------------------------------------------------- API calls: redirects


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_paid_post_is_not_reposted_to_another_origin(veo_conn, api, status, asynchronous):
    api.post("/veo/videos").mock(
        return_value=httpx.Response(status, headers={"location": "https://elsewhere.example/veo/videos?k=1"})
    )
    with respx.mock(assert_all_called=False) as other:
        elsewhere = other.route(host="elsewhere.example")
        with pytest.raises(VeoRedirectError, match=r"another origin, https://elsewhere\.example/veo/videos;") as info:
            await hook().asubmit(ASYNC_TEXT) if asynchronous else hook().submit(ASYNC_TEXT)
    assert elsewhere.call_count == 0 and "k=1" not in str(info.value)


def test_an_http_to_https_upgrade_is_another_origin_and_names_the_fix(veo_conn, api):
    api.post("/veo/tasks").mock(
        return_value=httpx.Response(301, headers={"location": BASE_URL.replace("http:", "https:") + "/veo/tasks"})
    )
    with pytest.raises(VeoRedirectError, match=r"https://veo\.test/veo/tasks.*Base URL"):
        hook().get_task("t")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_same_origin_307_is_followed_with_its_body_and_token(veo_conn, api, asynchronous):
    api.post("/veo/videos").mock(return_value=httpx.Response(307, headers={"location": "/v2/veo/videos"}))
    moved = api.post("/v2/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-9"}))
    sub = await hook().asubmit(ASYNC_TEXT) if asynchronous else hook().submit(ASYNC_TEXT)
    assert sub.veo_task_id == "t-9"
    sent = moved.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {SECRET_TOKEN}" and b'"prompt":"a mug"' in sent.content


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_same_origin_redirect_that_would_turn_a_post_into_a_get_is_refused(veo_conn, api, status):
    api.post("/veo/tasks").mock(return_value=httpx.Response(status, headers={"location": "/veo/tasks/"}))
    moved = api.route(path="/veo/tasks/")
    with pytest.raises(VeoRedirectError, match=f"HTTP {status}.*would turn it into a GET"):
        hook().get_task("t")
    assert moved.call_count == 0
