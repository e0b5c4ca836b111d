"""ASGI pieces of the Veo API emulator: request counting, dropped answers and the vendor's error shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veo_provider.testing.emulator.jobs import ADMIN_PREFIX
from veo_provider.testing.emulator.state import EmulatorState

__all__ = ["DROP_MARKER", "DROP_SCOPE_KEY", "CountingMiddleware", "Drop", "error", "new_trace_id", "read_object"]

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


class CountingMiddleware:
    """Counts requests (before the handler runs, so held requests count) and answer statuses."""

    def __init__(self, app: Any, state: EmulatorState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX + "/"):
            if scope["type"] == "http" and scope["path"].startswith(f"{ADMIN_PREFIX}/videos/"):
                self.state.count("downloads")
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self.state.count_request(path)

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
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
