"""compat.py is the one module that knows Airflow versions; each gate works on the Airflow installed here.

CI runs this file on every supported Airflow line (3.0, 3.1, 3.2, 3.3).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from veo_provider import compat

PACKAGE = Path(__file__).resolve().parents[1] / "veo_provider"
#: Private or version-bound Airflow modules: only compat.py may import them.
PRIVATE = ("airflow._shared", "airflow.state", "airflow.executors", "airflow.sdk")
VERSIONS = ("airflow.providers.common.compat.version_compat",)


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_module_but_compat_imports_a_private_airflow_module_or_the_version_flags():
    offenders = {
        str(path.relative_to(PACKAGE)): bad
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "compat.py" or path.parent != PACKAGE
        if (bad := [m for m in _imports(path) if m.startswith(PRIVATE + VERSIONS) or m == "airflow.sdk"])
    }
    assert not offenders, f"route these through airflow.providers.common.compat.sdk or veo_provider.compat: {offenders}"


def test_the_scan_sees_what_it_forbids(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from airflow.sdk import BaseOperator\nimport airflow.state\n")
    assert _imports(probe) == ["airflow.sdk", "airflow.state"]


def test_the_flags_are_common_compats_and_agree_with_the_installed_airflow():
    from airflow import __version__
    from airflow.providers.common.compat import version_compat
    from packaging.version import Version

    installed = Version(__version__).release[:2]
    assert compat.AIRFLOW_V_3_3_PLUS is version_compat.AIRFLOW_V_3_3_PLUS is (installed >= (3, 3))
    assert compat.AIRFLOW_V_3_2_PLUS is (installed >= (3, 2)) and compat.AIRFLOW_V_3_1_PLUS is (installed >= (3, 1))
    assert compat.HAS_TASK_STATE_STORE is compat.PARTIAL_APPLIES_OPERATOR_DEFAULTS is compat.AIRFLOW_V_3_3_PLUS


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://localhost:8080/execution/"),
        ({"AIRFLOW__API__BASE_URL": "/airflow"}, "http://localhost:8080/airflow/execution/"),
        ({"AIRFLOW__API__BASE_URL": "https://af.example/"}, "https://af.example/execution/"),
        (
            {
                "AIRFLOW__API__BASE_URL": "https://af.example",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://x:9/e/",
            },
            "http://x:9/e/",
        ),
    ],
)
def test_the_execution_api_url_is_resolved_as_the_worker_resolves_it(monkeypatch, env, expected):
    for name in ("AIRFLOW__API__BASE_URL", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert compat.execution_api_server_url() == expected


def test_outside_a_task_there_is_no_supervisor_and_nothing_runs_in_process():
    assert compat.supervisor_comms() is None and compat.in_process_comms() is False


def test_dag_default_args_merge_the_dag_the_group_and_the_task():
    from airflow.providers.common.compat.sdk import DAG, TaskGroup

    assert compat.dag_default_args() == {}
    with DAG("d", schedule=None, default_args={"retries": 5, "owner": "me"}) as dag:
        assert compat.dag_default_args()["retries"] == 5
        with TaskGroup("g", default_args={"retries": 7}):
            assert compat.dag_default_args()["retries"] == 7
            assert compat.dag_default_args(task_default_args={"retries": 1})["retries"] == 1
    assert compat.dag_default_args(dag=dag)["owner"] == "me"


@pytest.mark.skipif(compat.HAS_TASK_STATE_STORE, reason="the task state store exists")
def test_below_3_3_the_state_store_is_refused_clearly():
    with pytest.raises(RuntimeError, match=r"from Airflow 3\.3"):
        compat.state_store_get(None, None, "k")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"from Airflow 3\.3"):
        compat.state_store_set(None, None, "k", "{}", expires_at=None)  # type: ignore[arg-type]


@pytest.mark.skipif(not compat.HAS_TASK_STATE_STORE, reason="no task state store before Airflow 3.3")
def test_on_3_3_the_state_store_gates_reach_airflows_private_modules():
    from airflow._shared.state import TaskScope
    from airflow.state import get_state_backend

    from veo_provider.ledger.database import TaskInstanceRef

    scope = compat._scope(TaskInstanceRef("d", "r", "t", 2))
    assert isinstance(scope, TaskScope) and (scope.dag_id, scope.map_index) == ("d", 2)
    assert callable(get_state_backend().get) and callable(get_state_backend().set)


def test_on_3_0_get_user_is_airflows_own_dependency_of_a_token_string():
    """What the Videos app overrides on 3.0: the very callable requires_access_dag depends on."""
    import inspect

    if compat.API_READS_SESSION_COOKIE:
        with pytest.raises(RuntimeError, match=r"3\.1\+"):
            compat.airflow_get_user()
        return
    from airflow.api_fastapi.core_api import security

    get_user = compat.airflow_get_user()
    assert get_user is security.get_user and inspect.iscoroutinefunction(get_user)
    assert list(inspect.signature(get_user).parameters) == ["token_str"]
    from fastapi.dependencies.utils import get_dependant

    inner = security.requires_access_dag(method="GET")
    assert get_user in [sub.call for sub in get_dependant(path="/", call=inner).dependencies]
