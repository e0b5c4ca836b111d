"""The Videos views: the list and stream routes behind Airflow's auth, and the React bundle (3.1+ UI).

Cheap to import: FastAPI and the ORM are imported by ``app.py`` when the api-server builds the app.
"""

from __future__ import annotations

__all__ = ["UI_PREFIX"]

#: Where the plugin mounts the UI app in the api-server (routes under ``/veo-ui/api``, the bundle
#: under ``/veo-ui/static``).
UI_PREFIX = "/veo-ui"
