"""Extra link: a "Veo video" button on the task that opens its player page, or the vendor's URL.

Cheap to import (operators import it at DAG-parse time): the UI package's path constants only;
XCom and the configuration are read when a link is asked for. The page opens in a browser on
every Airflow 3.x (on 3.0 through the Videos app's own session, ``ui/browser_session.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

from veo_provider.ui import player_path

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator

__all__ = ["VeoVideoLink", "video_link"]


def _absolute_base(base_url: str | None) -> str | None:
    """``[api] base_url`` when it names a host (``https://airflow.example.com[/path]``), else None."""
    base = (base_url or "").strip()
    return base.rstrip("/") if base.startswith(("http://", "https://")) else None


def video_link(result: Any, ti_key: Any, base_url: str | None) -> str:
    """The player page when the task stored a file, the vendor URL when it did not, else "".

    Without an absolute ``[api] base_url`` the player link is relative (``veo-ui/player/...``):
    Airflow's UI (3.0 to 3.3) resolves it against its ``<base href>``, the api-server's root.
    """
    if not isinstance(result, dict):
        return ""
    stored = result.get("output_path")
    if isinstance(stored, str) and stored:
        path = player_path(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
        base = _absolute_base(base_url)
        return base + path if base else path.lstrip("/")
    url = result.get("video_url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""


class VeoVideoLink(BaseOperatorLink):
    """Links the task to its video: the player page of the file it stored, else the vendor's URL."""

    name = "Veo video"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        from airflow.providers.common.compat.sdk import XCom, conf

        # At the end of every try segment (a deferral too) Airflow asks for the link in the worker:
        # only a succeeded task has a result, and asking for a missing XCom logs an [error] line.
        state = getattr(ti_key, "state", None)
        if state is not None and getattr(state, "value", state) != "success":
            return ""
        result = XCom.get_value(ti_key=ti_key, key="return_value")
        base_url = conf.get("api", "base_url", fallback=None)
        return video_link(result, ti_key, base_url)
