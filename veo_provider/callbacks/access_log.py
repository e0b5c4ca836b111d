"""The callback URL's signature never reaches the api-server's access log.

Airflow 3.3 redacts token-like query values in its own access log; 3.0 and 3.1 log through
uvicorn's access logger and 3.2 through a middleware that prints the query as it came. Both read
the request's ASGI ``scope``, the same dict every layer passes down to our mounted app: uvicorn when
the response starts, the 3.2 middleware when the request is done. So once our route has read the
query, ``HideSignature`` replaces the signature's value in that dict, before the response starts.
It does this on every version: there is nothing to gain from a printed signature anywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from veo_provider.callbacks.signing import SIGNATURE_PARAM

__all__ = ["MASK", "HideSignature", "hide_signature"]

MASK = "***"
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]


def hide_signature(query: bytes) -> bytes:
    """``query`` with every ``sig_token`` value replaced by ``***`` (and nothing else changed in meaning)."""
    if SIGNATURE_PARAM.encode() not in query and b"%" not in query:
        return query
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return b""  # cannot tell where the signature is: log no query at all
    if not any(key == SIGNATURE_PARAM for key, _ in pairs):
        return query
    return urlencode([(key, MASK if key == SIGNATURE_PARAM else value) for key, value in pairs], safe="*").encode()


class HideSignature:
    """ASGI middleware: hides the signature in ``scope["query_string"]`` once the response starts."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(
        self,
        scope: _Scope,
        receive: Callable[[], Awaitable[_Message]],
        send: Callable[[_Message], Awaitable[None]],
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        def hide() -> None:
            scope["query_string"] = hide_signature(scope.get("query_string") or b"")

        async def send_hidden(message: _Message) -> None:
            if message.get("type") == "http.response.start":
                hide()  # uvicorn writes its access line as it sends this message
            await send(message)

        try:
            await self.app(scope, receive, send_hidden)
        finally:
            hide()
