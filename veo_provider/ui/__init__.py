"""The Videos views: the list and stream routes behind Airflow's auth, the player page, the React bundle.

Cheap to import (the extra link uses it at DAG-parse time): FastAPI and the ORM are imported by
``app.py`` when the api-server builds the app.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["PLAYER_ROUTE", "UI_PREFIX", "player_path"]

#: Where the plugin mounts the UI app in the api-server (routes under ``/veo-ui/api``, the bundle
#: under ``/veo-ui/static``, the player page under ``/veo-ui/player``).
UI_PREFIX = "/veo-ui"
#: The player page of one task instance, inside the UI app.
PLAYER_ROUTE = "/player/{dag_id}/{run_id}/{task_id}/{map_index}"


def player_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The player page's path under the api-server's root (run ids hold ':' and '+': each part quoted)."""
    parts = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": str(map_index)}
    return UI_PREFIX + PLAYER_ROUTE.format(**{k: quote(v, safe="") for k, v in parts.items()})
