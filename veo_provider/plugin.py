"""The AirflowPlugin: mounts the provider's apps in the api-server and its Videos views.

The /veo app hides the callback signature from the access log, (before Airflow 3.3) the plugin
sweeps the ledger's old Variables in a daemon thread, and once the api-server has loaded, its heap
so far is frozen out of the garbage collector's full collections (``freeze_startup_heap``).

``/veo/callback`` (the callback receiver) and ``/veo/quota`` (the spending cap) share one app,
so both keep their public URLs under one prefix; the Videos routes (``/veo-ui``) are their own
app, behind Airflow's authorization. Every Airflow process loads plugins, but only
the api-server reads ``fastapi_apps``: the app (and FastAPI) is built on first access, so
importing this module stays cheap.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from veo_provider.ui.views import REACT_APPS

__all__ = ["VeoPlugin", "build_app", "freeze_startup_heap"]

log = logging.getLogger(__name__)

#: ``[veo] api_server_gc_freeze``: on unless set to False.
GC_FREEZE_OPTION = ("veo", "api_server_gc_freeze")
_frozen = False


def freeze_startup_heap() -> bool:
    """Move the api-server's heap so far (Airflow, FastAPI, SQLAlchemy: about a million objects)
    out of the garbage collector's reach, once per process; True if it did.

    A full collection walks every tracked object: in an api-server that was up to 0.6 s of CPU,
    a pause of every request, and a storm of callbacks (each allocating ORM objects) set one off
    every few dozen requests. Frozen objects are still freed by reference counting; only cycles
    among them are never collected, which for the modules and caches loaded at start is what
    happens anyway. Airflow does the same in its scheduler and dag-processor (before they fork).
    """
    global _frozen
    from airflow.configuration import conf

    if _frozen or not conf.getboolean(*GC_FREEZE_OPTION, fallback=True):
        return False
    gc.collect()
    gc.freeze()
    _frozen = True
    log.info(
        "Veo: froze the api-server's startup heap (%d objects) so that full garbage collections do not "
        "pause requests; set [veo] api_server_gc_freeze = False to turn this off",
        gc.get_freeze_count(),
    )
    return True


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
    freeze_startup_heap()  # the api-server is loaded by now: it asks for its plugins' apps while it builds its own
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
