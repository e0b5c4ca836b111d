"""The callback URL's signature never reaches an access log, on any Airflow 3.x.

The route must still read the real signature (a forged one is refused, a good one accepted), and
what an access logger reads from the request's scope afterwards (uvicorn when the response starts,
Airflow 3.2+'s middleware when the request is done) carries ``***`` instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.routing import Mount

from veo_provider.callbacks.access_log import MASK, HideSignature, hide_signature
from veo_provider.callbacks.signing import SIGNATURE_PARAM

SIG = "c2lnbmF0dXJlLW5ldmVyLWxvZ2dlZA"


def test_only_the_signature_value_is_replaced():
    query = f"dag_id=videos&run_id=r%2B1&{SIGNATURE_PARAM}={SIG}&key=k".encode()
    hidden = hide_signature(query).decode()
    assert SIG not in hidden and f"{SIGNATURE_PARAM}={MASK}" in hidden
    assert "dag_id=videos" in hidden and "run_id=r%2B1" in hidden and "key=k" in hidden


@pytest.mark.parametrize(
    "query",
    [f"{SIGNATURE_PARAM}={SIG}", f"a=1&sig%5Ftoken={SIG}", f"{SIGNATURE_PARAM}={SIG}&{SIGNATURE_PARAM}={SIG}2"],
)
def test_every_spelling_of_the_signature_is_hidden(query):
    assert SIG not in hide_signature(query.encode()).decode()


def test_a_query_without_a_signature_is_left_alone():
    assert hide_signature(b"a=1&b=%20") == b"a=1&b=%20"
    assert hide_signature(b"") == b""


def _app_seen_by_access_loggers(seen: dict[str, Any]) -> Any:
    """Our app mounted at /veo in a parent app, wrapped the way access loggers wrap the api-server."""
    ours = FastAPI()

    @ours.post("/callback")
    async def callback(request: Request) -> dict[str, Any]:
        return {"read": request.query_params[SIGNATURE_PARAM]}

    ours.add_middleware(HideSignature)
    parent = FastAPI(routes=[Mount("/veo", app=ours)])

    async def logging_app(scope: Any, receive: Any, send: Any) -> None:
        async def send_logged(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["at_response_start"] = scope["query_string"]  # uvicorn (Airflow 3.0, 3.1)
            await send(message)

        try:
            await parent(scope, receive, send_logged)
        finally:
            seen["when_done"] = scope["query_string"]  # Airflow 3.2+'s access-log middleware

    return logging_app


async def test_the_route_reads_the_signature_and_the_access_loggers_do_not():
    seen: dict[str, Any] = {}
    app = _app_seen_by_access_loggers(seen)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        answer = await client.post(f"/veo/callback?dag_id=d&{SIGNATURE_PARAM}={SIG}")
    assert answer.status_code == 200 and answer.json() == {"read": SIG}
    for when in ("at_response_start", "when_done"):
        assert SIG.encode() not in seen[when] and b"dag_id=d" in seen[when], when


async def test_airflows_own_access_log_middleware_prints_no_signature():
    middleware = pytest.importorskip("airflow.api_fastapi.common.http_access_log")
    from structlog.testing import capture_logs

    ours = FastAPI()

    @ours.post("/callback")
    async def callback() -> dict[str, str]:
        return {"status": "ok"}

    ours.add_middleware(HideSignature)
    parent = FastAPI(routes=[Mount("/veo", app=ours)])
    parent.add_middleware(middleware.HttpAccessLogMiddleware)
    url = urlsplit(f"http://api/veo/callback?dag_id=d&{SIGNATURE_PARAM}={SIG}")
    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parent), base_url="http://api") as client:
            await client.post(f"{url.path}?{url.query}")
    [line] = [entry for entry in logs if entry.get("path") == "/veo/callback"]
    assert SIG not in str(line) and "dag_id=d" in str(line["query"])
