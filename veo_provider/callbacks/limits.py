"""Body limits of the plugin's routes: how much we read, and what JSON we agree to parse.

Everything here runs before a body is trusted with anything: a body past the size limit is
refused (413) whether or not Content-Length says so, and JSON that is not an object, uses
``NaN``/``Infinity`` or nests too deep is refused (400) before anything is stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from veo_provider.callbacks.signing import CallbackRejected

__all__ = ["MAX_BODY_BYTES", "MAX_JSON_DEPTH", "load_json_object", "read_body"]

#: A Veo result is a few KiB; anything near this is not one.
MAX_BODY_BYTES = 1_048_576
#: A Veo result nests 4 levels deep; deeper bodies are refused before anything is stored.
MAX_JSON_DEPTH = 32


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) past ``limit`` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not re.fullmatch(r"[0-9]{1,12}", declared.strip()):
            raise CallbackRejected(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise CallbackRejected(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CallbackRejected(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def load_json_object(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The body as a JSON object; CallbackRejected(400) for anything else (never a traceback)."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CallbackRejected(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, f"the body must be a JSON object (got a JSON {type(data).__name__})")
    if _too_deep(data, max_depth):
        raise CallbackRejected(400, f"the body nests deeper than {max_depth} levels")
    return data
