"""The AirflowPlugin: mounts the provider's apps in the api-server and its Videos views, nothing else.

The /veo app hides the callback signature from the access log, and (before Airflow 3.3) the plugin
sweeps the ledger's old Variables in a daemon thread.

``/veo/callback`` (the callback receiver) and ``/veo/quota`` (the spending cap) share one app,
so both keep their public URLs under one prefix; the Videos routes (``/veo-ui``) are their own
app, behind Airflow's authorization. Every Airflow process loads plugins, but only
the api-server reads ``fastapi_apps``: the app (and FastAPI) is built on first access, so
importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from veo_provider.ui.views import REACT_APPS

__all__ = ["VeoPlugin", "build_app"]


def build_app() -> Any:
    """The api-server's ``/veo`` app: the callback route and the spending cap's route."""
    from fastapi import FastAPI

    from veo_provider.callbacks.access_log import HideSignature
    from veo_provider.callbacks.app import add_callback_route
    from veo_provider.ledger.database import start_sweeper
    from veo_provider.spending.route import add_spending_cap_route

    app = FastAPI(title="Veo (airflow-provider-veo)", docs_url=None, redoc_url=None, openapi_url=None)
    add_callback_route(app)
    add_spending_cap_route(app)
    app.add_middleware(HideSignature)  # the access log prints the query after our route read it
    start_sweeper()  # before Airflow 3.3: the ledger's Variables of tasks that never succeeded
    return app


class _LazyApps:
    """Class attribute that builds the app once, when the api-server first asks for it."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: object, owner: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from veo_provider.ui import UI_PREFIX
            from veo_provider.ui.app import create_ui_app

            self._apps = [
                {"app": build_app(), "url_prefix": "/veo", "name": "Veo callback receiver"},
                {"app": create_ui_app(), "url_prefix": UI_PREFIX, "name": "Veo videos"},
            ]
        return self._apps


class VeoPlugin(AirflowPlugin):
    """Receives Veo job callbacks (signed URLs), resumes the waiting tasks at once, and counts the spending cap."""

    name = "veo_callbacks"
    fastapi_apps = _LazyApps()  # type: ignore[assignment]
    react_apps = REACT_APPS  # the Videos tabs; Airflow 3.1+ renders them, 3.0 ignores them
