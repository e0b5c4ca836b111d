"""An auth manager with per-DAG access for tests: Airflow's simple one, where ``outsider`` reads one DAG only."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

#: The only DAG the ``outsider`` user may read.
OUTSIDER_DAG = "private_dag"


class OneDagAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() == "outsider":
            # No DAG named (a list across DAGs): allowed, and the list reads only the DAGs
            # get_authorized_dag_ids gives, which asks about each DAG by id.
            return method == "GET" and details is not None and details.id in (None, OUTSIDER_DAG)
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
