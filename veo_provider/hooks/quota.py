"""The worker's one call to Airflow's api-server: ``POST /veo/quota`` (see ``spending.py``).

The api-server is found the way the worker finds the Execution API (``[core]
execution_api_server_url``, else ``[api] base_url``): our plugin is mounted in that same server.
"""

from __future__ import annotations

from typing import Any

import httpx

from veo_provider.hooks.clients import client_options

__all__ = ["api_server_base", "post_cap_request"]

#: The count is a few row locks; a slower answer means the api-server is in trouble.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
ATTEMPTS = 3


def api_server_base() -> str:
    """Airflow's own resolution of the Execution API URL, minus its ``/execution`` suffix."""
    from airflow.executors.base_executor import get_execution_api_server_url

    base = get_execution_api_server_url().rstrip("/")
    return base[: -len("/execution")] if base.endswith("/execution") else base


def post_cap_request(body: dict[str, Any]) -> dict[str, Any]:
    """The api-server's decision; SpendingCapError when it cannot be had (nothing is sent to Veo then)."""
    from veo_provider.spending import SpendingCapError

    url = f"{api_server_base()}/veo/quota"
    last: str = ""
    with httpx.Client(timeout=TIMEOUT, **client_options()) as client:
        for _ in range(ATTEMPTS):  # the request is idempotent: a key is counted once
            try:
                response = client.post(url, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 200:
                return dict(response.json())
            detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
            last = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
            if response.status_code < 500:
                break
    raise SpendingCapError(
        f"Could not check the Veo spending cap at {url} ({last}); nothing was sent to the Veo API. The cap is "
        "counted by the airflow-provider-veo plugin in the api-server: install the provider there too, and make "
        "[core] execution_api_server_url point at that api-server. A retry asks again."
    )
