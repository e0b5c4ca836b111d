"""HTTP to our own routes in Airflow's api-server (the plugin mounted at ``/veo``), from a worker.

The api-server is found the way the worker finds the Execution API (``[core]
execution_api_server_url``, else ``[api] base_url``): our plugin is mounted in that same server.
This module knows nothing of what the routes do; it POSTs JSON and hands back the answer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import httpx

from veo_provider.exceptions import VeoTransportError
from veo_provider.hooks.clients import client_options

__all__ = ["ApiServerAnswer", "api_server_base", "post_json"]

#: Our routes answer after a few row writes; a slower answer means the api-server is in trouble.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ApiServerAnswer(NamedTuple):
    status: int
    #: The JSON body when the answer is JSON (an object), else None.
    json: dict[str, Any] | None
    url: str


def api_server_base() -> str:
    """Airflow's own resolution of the Execution API URL, minus its ``/execution`` suffix."""
    from veo_provider.compat import execution_api_server_url

    base = execution_api_server_url().rstrip("/")
    return base[: -len("/execution")] if base.endswith("/execution") else base


def _json_of(response: httpx.Response) -> dict[str, Any] | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def post_json(
    path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None, attempts: int = 1
) -> ApiServerAnswer:
    """POST ``body`` to ``<api-server><path>``; the last answer, or VeoTransportError if none came.

    ``attempts`` > 1 retries network failures and 5xx answers: pass it only for idempotent routes.
    Headers are never logged nor put in an error message (they may carry a credential).
    """
    url = f"{api_server_base()}{path}"
    failure = ""
    with httpx.Client(timeout=TIMEOUT, **client_options()) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(url, json=body, headers=headers)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500 or attempt == attempts:
                return ApiServerAnswer(response.status_code, _json_of(response), url)
            failure = f"HTTP {response.status_code}"
    raise VeoTransportError(f"No answer from Airflow's api-server at {url} ({failure})")
