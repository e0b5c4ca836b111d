"""The React views the plugin adds to Airflow's UI (``react_apps``, Airflow 3.1+)."""

from __future__ import annotations

from typing import Any

from veo_provider.ui import UI_PREFIX

#: How a Veo task instance names its operator (``custom_operator_name`` or the class name).
VEO_OPERATOR_NAMES = frozenset({"VeoOperator", "@task.veo"})

__all__ = ["BUNDLE_FILE", "REACT_APPS", "bundle_url"]

#: The UMD bundle built from ``www/`` into ``static/``.
BUNDLE_FILE = "videos.umd.js"


def bundle_url(base_url: str | None = None) -> str:
    """The bundle's URL path under the api-server's ``[api] base_url`` path (for non-root deployments)."""
    from urllib.parse import urlsplit

    base = urlsplit(base_url).path if base_url and "://" in base_url else (base_url or "")
    return f"{base.rstrip('/')}{UI_PREFIX}/static/{BUNDLE_FILE}"


def react_apps(base_url: str | None = None) -> list[dict[str, Any]]:
    """The "Videos" tabs on the DAG run and task instance pages, a "Veo videos" page in the nav (one bundle)."""
    url = bundle_url(base_url)
    return [
        {"name": "Videos", "bundle_url": url, "destination": "dag_run", "url_route": "veo-videos"},
        {
            "name": "Videos",
            "bundle_url": url,
            "destination": "task_instance",
            "url_route": "veo-video",
            # From Airflow 3.4 the tab shows only on Veo task instances; older cores pass the key
            # through and show it on every task instance (it then says there is no Veo task).
            "applies_to": {"operator_name": sorted(VEO_OPERATOR_NAMES)},
        },
        # Every readable DAG's videos (the bundle renders the gallery when it gets no DAG).
        {"name": "Veo videos", "bundle_url": url, "destination": "nav", "url_route": "veo-gallery"},
    ]


def _configured_base_url() -> str | None:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None)


REACT_APPS = react_apps(_configured_base_url())
