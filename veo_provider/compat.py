"""The one place that knows Airflow versions: feature flags and every private Airflow module we touch.

Public Task SDK names (``BaseOperator``, ``AirflowFailException``, ``conf`` ...) are imported from
``airflow.providers.common.compat.sdk`` everywhere, which finds them on every Airflow 3.x. What
differs between 3.0, 3.1, 3.2 and 3.3 is gated here with common-compat's version flags, and each
private module is imported only inside a function of this module (``tests/test_compat.py`` runs
each one on the installed Airflow and fails if any other module imports one).

    3.0    the api-server reads only the ``Authorization`` header: the Videos app swaps the UI's
           ``localStorage`` token for a cookie of its own, and overrides ``get_user`` on itself only.
    3.1+   the api-server accepts the UI's session cookie (``_token``) on every route.
    3.3+   the task state store (``context["task_state_store"]``, ``airflow.state``) holds the ledger;
           ``partial()`` applies an operator's own defaults; ``get_execution_api_server_url``.
    < 3.3  the ledger lives in Airflow Variables (``ledger/variables.py``); we apply the operator's
           defaults to ``partial()`` ourselves and resolve the api-server URL as the worker does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.version_compat import (
    AIRFLOW_V_3_1_PLUS,
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "API_READS_SESSION_COOKIE",
    "HAS_TASK_STATE_STORE",
    "PARTIAL_APPLIES_OPERATOR_DEFAULTS",
    "UI_TOKEN_STORAGE_KEY",
    "airflow_get_user",
    "dag_default_args",
    "execution_api_server_url",
    "state_store_get",
    "state_store_set",
    "supervisor_comms",
]

#: ``context["task_state_store"]`` and ``airflow.state`` (Airflow 3.3): the ledger's home when present.
HAS_TASK_STATE_STORE: bool = AIRFLOW_V_3_3_PLUS
#: Before 3.3, ``Operator.partial()`` fills unset arguments with Airflow's defaults (``retries=0``),
#: not the operator's own: mapped Veo tasks would lose ``retries=2``.
PARTIAL_APPLIES_OPERATOR_DEFAULTS: bool = AIRFLOW_V_3_3_PLUS
#: The api-server takes the UI's ``_token`` session cookie as a credential (3.1+). On 3.0 only the
#: ``Authorization`` header counts, and the UI keeps its token in ``localStorage``: a browser
#: that follows a link to one of our pages carries no credential there.
API_READS_SESSION_COOKIE: bool = AIRFLOW_V_3_1_PLUS
#: Where Airflow 3.0's UI keeps its login token in the browser (``localStorage``; its
#: ``src/utils/tokenHandler.ts``, ``TOKEN_STORAGE_KEY``).
UI_TOKEN_STORAGE_KEY = "token"


# ------------------------------------------------------------------------------ the api-server


def airflow_get_user() -> Any:
    """Airflow 3.0's ``get_user``: the dependency ``requires_access_dag`` resolves the user with.

    On 3.0 it is ``async def get_user(token_str)``, the token taken from the ``Authorization``
    header; awaited with a token string it verifies it as every 3.0 route does (401 expired, 403
    invalid). The Videos app overrides it on its own app only; 3.1+ read the cookie themselves.
    """
    if API_READS_SESSION_COOKIE:
        raise RuntimeError("Airflow 3.1+ read the UI's session cookie: the Videos app overrides nothing there")
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


# ------------------------------------------------------------------------------ the worker


def supervisor_comms() -> Any:
    """The task runner's channel to its supervisor in this process; None outside a task."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - a Task SDK without it: never in-process
        return None
    return getattr(task_runner, "SUPERVISOR_COMMS", None)


def in_process_comms() -> bool:
    """True when the task runs under ``airflow dags test`` / ``tasks test`` (in-process supervisor)."""
    try:
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:  # pragma: no cover - a Task SDK without it: never in-process
        return False
    return isinstance(supervisor_comms(), InProcessSupervisorComms)


def execution_api_server_url() -> str:
    """The Execution API URL a worker uses: ``[core] execution_api_server_url``, else ``[api] base_url``
    + ``/execution/`` (``http://localhost:8080`` when the base URL is relative), as every 3.x resolves it."""
    if AIRFLOW_V_3_3_PLUS:
        from airflow.executors.base_executor import get_execution_api_server_url

        return get_execution_api_server_url()
    from airflow.providers.common.compat.sdk import conf

    base_url = conf.get("api", "base_url", fallback="/") or "/"
    if base_url.startswith("/"):
        base_url = f"http://localhost:8080{base_url}"
    default = f"{base_url.rstrip('/')}/execution/"
    return conf.get("core", "execution_api_server_url", fallback=default) or default


def dag_default_args(
    dag: Any = None, task_group: Any = None, task_default_args: Mapping[str, Any] | None = None
) -> Mapping[str, Any]:
    """The ``default_args`` a task defined here gets (DAG, task group, its own); they win over ours."""
    try:
        from airflow.sdk.bases.operator import get_merged_defaults
        from airflow.sdk.definitions._internal.contextmanager import DagContext, TaskGroupContext
    except ImportError:  # pragma: no cover - Airflow moved them: our defaults still apply
        return dict(task_default_args or {})
    dag = dag or DagContext.get_current()
    task_group = task_group or (TaskGroupContext.get_current(dag) if dag else None)
    merged = get_merged_defaults(
        dag=dag, task_group=task_group, task_params=None, task_default_args=dict(task_default_args or {})
    )[0]
    return merged or {}


# ----------------------------------------------------------------- the metadata database


def _scope(ref: Any) -> Any:
    from airflow._shared.state import TaskScope

    return TaskScope(dag_id=ref.dag_id, run_id=ref.run_id, task_id=ref.task_id, map_index=ref.map_index)


def state_store_get(session: Session, ref: Any, key: str) -> str | None:
    """The raw value the task state store holds for ``ref`` (dag_id, run_id, task_id, map_index) and ``key``."""
    if not HAS_TASK_STATE_STORE:
        raise RuntimeError("Airflow's task state store exists from Airflow 3.3")
    from airflow.state import get_state_backend

    return get_state_backend().get(_scope(ref), key, session=session)


def state_store_set(session: Session, ref: Any, key: str, value: str, *, expires_at: datetime | None) -> None:
    """Store ``value`` as the Execution API would (the configured state backend)."""
    if not HAS_TASK_STATE_STORE:
        raise RuntimeError("Airflow's task state store exists from Airflow 3.3")
    from airflow.state import get_state_backend

    get_state_backend().set(_scope(ref), key, value, expires_at=expires_at, session=session)


def state_store_is_metastore() -> bool:
    """True when the task state store is Airflow's metadata-database backend (the default on 3.3+)."""
    if not HAS_TASK_STATE_STORE:
        return False
    from airflow.state import get_state_backend
    from airflow.state.metastore import MetastoreBackend

    return type(get_state_backend()) is MetastoreBackend


def state_store_upsert(
    session: Session, ref: Any, dag_run_id: int, key: str, value: str, *, expires_at: datetime | None
) -> None:
    """The metadata backend's own upsert, given the DAG run id the caller already holds (the backend
    would look it up first: one more round trip). Only when ``state_store_is_metastore()``."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.state.metastore import _build_upsert_stmt
    from airflow.utils.sqlalchemy import get_dialect_name

    now = datetime.now(timezone.utc)
    values = dict(dag_run_id=dag_run_id, dag_id=ref.dag_id, run_id=ref.run_id, task_id=ref.task_id)
    values.update(map_index=ref.map_index, key=key, value=value, updated_at=now, expires_at=expires_at)
    update = dict(value=value, updated_at=now, expires_at=expires_at)
    conflict = ["dag_run_id", "task_id", "map_index", "key"]
    session.execute(_build_upsert_stmt(get_dialect_name(session), TaskStateStoreModel, conflict, values, update))
