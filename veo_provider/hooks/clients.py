"""The HTTP clients: one SSL context per process, one AsyncClient per event loop, no cookies.

Everything that exists per waiting job reuses these, so 1,000 waiting triggers cost one client.
No client follows redirects by itself: the hook follows API redirects only within one origin
(a 307/308 elsewhere would re-post the body), and a download checks every hop's address.
A download client connects only to addresses its check accepted: the name is resolved once,
checked, and that very address is connected to (TLS still verifies the name), so no second
DNS answer can slip a private address in between the check and the connection.
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import logging
import ssl
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

__all__ = [
    "MAX_REDIRECTS",
    "aclose_shared_async_client",
    "api_redirect",
    "client_options",
    "download_client",
    "shared_async_client",
    "shared_ssl_context",
]

#: More than a CDN or a proxy needs; a loop ends fast with a VeoRedirectError.
MAX_REDIRECTS = 5
#: How long the shared async client keeps an idle connection: longer than the default poll
#: interval, shorter than the idle timeouts load balancers commonly use (60 s and up).
KEEPALIVE_SECONDS = 30.0


class _NoQueryInRequestLogs(logging.Filter):
    """httpx logs each request's full URL at INFO (task logs show it); a signed CDN link carries
    its credentials in the query string, so the logged URL keeps only its path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL) and args[1].query:
            record.args = (args[0], f"{str(args[1]).split('?', 1)[0]}?[query hidden]", *args[2:])
        return True


if not any(isinstance(f, _NoQueryInRequestLogs) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_NoQueryInRequestLogs())


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context per process: building one costs ~0.8 MB and ~23 ms CPU."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _no_cookies() -> http.cookiejar.CookieJar:
    """A jar that refuses every cookie: a shared client serves many tokens, and a cookie set on
    one token's call must never ride along on another's."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def client_options() -> dict[str, Any]:
    return {
        "verify": shared_ssl_context(),
        "follow_redirects": False,
        "cookies": _no_cookies(),
    }


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def api_redirect(response: httpx.Response) -> httpx.Request | None:
    """The request to send next when an API answer redirects; None when it does not.

    Followed only within the origin the call went to, and only as 307/308 (same method, same
    body): a redirect elsewhere would re-send the body (its signed callback_url) and could
    re-send the token, and a 301/302/303 would turn a paid POST into a GET. Anything else is a
    final VeoRedirectError naming where the API pointed (no query string).
    """
    from veo_provider.exceptions import VeoRedirectError

    hop = response.next_request
    if hop is None or not response.has_redirect_location:
        return None
    sent = response.request
    hops = int(sent.extensions.get("veo_redirects", 0)) + 1
    where = f"{hop.url.scheme}://{hop.url.netloc.decode('ascii', 'replace')}{hop.url.path}"
    called = f"{sent.method} {sent.url.scheme}://{sent.url.netloc.decode('ascii', 'replace')}{sent.url.path}"
    if _origin(hop.url) != _origin(sent.url):
        raise VeoRedirectError(
            f"{called} was redirected (HTTP {response.status_code}) to another origin, {where}; not followed, so "
            "neither the body nor the token goes there: if the API moved, make that the Veo connection's Base URL"
        )
    if response.status_code not in (307, 308):
        raise VeoRedirectError(
            f"{called} was redirected with HTTP {response.status_code} to {where}, which would turn it into a GET; "
            "not followed: set the Base URL of the Veo connection to the API's address"
        )
    if hops > MAX_REDIRECTS:
        raise VeoRedirectError(
            f"{called} was redirected more than {MAX_REDIRECTS} times (a redirect loop?): "
            "check the Base URL of the Veo connection"
        )
    hop.extensions = {**sent.extensions, "veo_redirects": hops}
    return hop


#: (host, port) -> the addresses to connect to, each already accepted; raises to refuse the host.
AddressCheck = Callable[[str, int], list[str]]


class _CheckedBackend(httpcore.SyncBackend):
    """Connects to the addresses ``check`` accepted for a host, never to a fresh DNS answer."""

    def __init__(self, check: AddressCheck) -> None:
        self._check = check

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in self._check(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool built on ``_CheckedBackend`` (httpx has no
    argument for a network backend; the pool is httpcore's public API)."""

    def __init__(self, check: AddressCheck) -> None:
        super().__init__(verify=shared_ssl_context(), trust_env=False)
        if not isinstance(self._pool, httpcore.ConnectionPool):  # pragma: no cover - an httpx change
            raise RuntimeError("httpx.HTTPTransport changed: the download address check cannot be installed")
        self._pool = httpcore.ConnectionPool(ssl_context=shared_ssl_context(), network_backend=_CheckedBackend(check))


def download_client(check: AddressCheck) -> httpx.Client:
    """A client for one download: no redirects followed, no cookies, no proxy, no compression.

    ``Accept-Encoding: identity``: a compressed answer is decoded a whole network chunk at a
    time, so one small gzip chunk could inflate in memory before the size cap sees it. No
    HTTP(S)_PROXY: the address check holds only for a connection this process makes itself.
    """
    return httpx.Client(
        transport=_CheckedTransport(check),
        follow_redirects=False,
        cookies=_no_cookies(),
        headers={"accept-encoding": "identity"},
        trust_env=False,
    )


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def shared_async_client() -> httpx.AsyncClient:
    """The event loop's one AsyncClient (all triggers in a triggerer share it)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None or client.is_closed:
        # Kept alive past one poll tick (15 s by default; httpx's default drops a connection after
        # 5 s idle): a triggerer's batched reads reuse one TLS connection instead of a handshake a tick.
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_SECONDS)
        client = httpx.AsyncClient(limits=limits, **client_options())
        _async_clients[loop] = client
    return client


async def aclose_shared_async_client() -> None:
    """Close this loop's client: a worker's own short loop (``deferrable=False``) must not leak it."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
