"""ASGI pieces of the Veo API emulator: request counting, dropped answers and the vendor's error shape."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veo_provider.testing.emulator.jobs import ADMIN_PREFIX
from veo_provider.testing.emulator.state import EmulatorState

__all__ = [
    "DROP_MARKER",
    "DROP_SCOPE_KEY",
    "CountingMiddleware",
    "Drop",
    "access_entry",
    "error",
    "new_trace_id",
    "read_object",
]

#: What the app returns to uvicorn for a dropped answer (any value makes it close the transport).
DROP_MARKER = "veo-emulator: drop_response (connection closed on purpose)"
#: Scope key set by ``Drop``; the app sees it once the request is handled.
DROP_SCOPE_KEY = "veo_emulator.drop"


def new_trace_id() -> str:
    return str(uuid.uuid4())


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer in the vendor's shape: ``{"success": false, "error": {code, message}, "trace_id"}``."""
    body = {"success": False, "error": {"code": code, "message": message}, "trace_id": new_trace_id()}
    return JSONResponse(body, status_code=status, headers=headers)


#: Headers whose values an access log must not keep (as a real API's would not): credentials.
_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|key|signature|password", re.IGNORECASE)


def access_entry(scope: Any) -> dict[str, Any]:
    """An access-log line: method, path, query string as received, and headers with credential values
    redacted (``authorization: Bearer [redacted]``: the scheme shows, the token does not)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if _SECRET_HEADER.search(name):
            scheme, sep, _ = value.partition(" ")
            value = f"{scheme} [redacted]" if sep and scheme.isalpha() else "[redacted]"
        headers[name] = value
    client = scope.get("client") or ("", 0)
    return {
        "at": time.time(),
        "client": client[0],
        "method": scope.get("method"),
        "path": scope["path"],
        "query": scope.get("query_string", b"").decode("latin-1"),
        "headers": headers,
        "status": None,  # stays None when the answer is dropped
    }


class CountingMiddleware:
    """Counts requests (before the handler runs, so held requests count) and answer statuses;
    keeps the access log (every HTTP request, admin routes and downloads included)."""

    def __init__(self, app: Any, state: EmulatorState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        entry = access_entry(scope)
        self.state.log_access(entry)
        counted = not path.startswith(ADMIN_PREFIX + "/")
        if counted:
            self.state.count_request(path)
        elif path.startswith(f"{ADMIN_PREFIX}/videos/"):
            self.state.count("downloads")

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                if counted:
                    self.state.count_response(path, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)


class Drop:
    """Answers nothing; the app then returns a value so that uvicorn closes the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope[DROP_SCOPE_KEY] = True


async def read_object(request: Request) -> dict[str, Any] | Response:
    """The request body as a JSON object, or the vendor's 400 answer."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return error(400, "bad_request", f"the request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error(400, "bad_request", "the request body must be a JSON object")
    return body
