"""The HTTP clients: one SSL context per process, one AsyncClient per event loop, no cookies.

Everything that exists per waiting job reuses these, so 1,000 waiting triggers cost one client.
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import logging
import ssl
import weakref
from typing import Any

import httpx

__all__ = ["MAX_REDIRECTS", "aclose_shared_async_client", "client_options", "shared_async_client", "shared_ssl_context"]

#: More than a CDN or a proxy needs; a loop ends fast with a VeoRedirectError.
MAX_REDIRECTS = 5


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
        "follow_redirects": True,
        "max_redirects": MAX_REDIRECTS,
        "cookies": _no_cookies(),
    }


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def shared_async_client() -> httpx.AsyncClient:
    """The event loop's one AsyncClient (all triggers in a triggerer share it)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20), **client_options()
        )
        _async_clients[loop] = client
    return client


async def aclose_shared_async_client() -> None:
    """Close this loop's client: a worker's own short loop (``deferrable=False``) must not leak it."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
