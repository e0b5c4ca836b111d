"""Mounts the Veo callback receiver in the Airflow api-server at ``/veo`` (``/veo/callback``).

Every Airflow process loads plugins, but only the api-server reads ``fastapi_apps``: the app
(and FastAPI) is built on first access, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from veo_provider.ui.views import REACT_APPS

__all__ = ["VeoCallbackPlugin"]


class _ReceiverApps:
    """Class attribute that builds the receiver app once, when the api-server first asks for it."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: object, owner: type | None = None) -> list[dict[str, Any]]:
        if self._apps is None:
            from veo_provider.callbacks.receiver import create_app
            from veo_provider.ui import UI_PREFIX
            from veo_provider.ui.app import create_ui_app

            self._apps = [
                {"app": create_app(), "url_prefix": "/veo", "name": "Veo callback receiver"},
                {"app": create_ui_app(), "url_prefix": UI_PREFIX, "name": "Veo videos"},
            ]
        return self._apps


class VeoCallbackPlugin(AirflowPlugin):
    """Receives Veo job callbacks (signed URLs) and resumes the waiting tasks at once."""

    name = "veo_callbacks"
    fastapi_apps = _ReceiverApps()  # type: ignore[assignment]
    react_apps = REACT_APPS  # the Videos tabs; Airflow 3.1+ renders them, 3.0 ignores them
