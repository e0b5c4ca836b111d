"""A real Airflow cluster (PostgreSQL) plus the emulator, started once per executor per test session.

A test runs on the LocalExecutor unless it is marked ``@pytest.mark.executors("CeleryExecutor", ...)``:
only what the executor changes (how mapped tasks defer from a worker, how a killed worker is noticed,
concurrent workers racing for the spending cap) needs the Celery worker, so every other test pays for
one cluster, not two. The fault campaign (``make test-reliability``) runs both executors under faults.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from veo_provider.testing.cluster import AirflowCluster, free_port, postgres_unavailable, redis_unavailable
from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

ROOT = Path(__file__).resolve().parents[2]
CALLBACK_SECRET = "e2e-callback-secret-0123456789abcdef0123456789"

DEFAULT_EXECUTORS = ("LocalExecutor",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cluster" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("executors")
    executors = marker.args if marker else DEFAULT_EXECUTORS
    metafunc.parametrize("cluster", executors, indirect=True, scope="session")


@pytest.fixture(scope="session")
def e2e_emulator():
    emu = VeoEmulator(EmulatorConfig(generation_seconds=2.0)).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory, e2e_emulator):
    if reason := postgres_unavailable():
        pytest.skip(f"end-to-end tests need PostgreSQL: {reason}")
    if request.param == "CeleryExecutor" and (reason := redis_unavailable()):
        pytest.skip(f"the CeleryExecutor end-to-end tests need Redis as the broker: {reason}")
    base = tmp_path_factory.mktemp("e2e")
    dags = base / "dags"
    dags.mkdir()
    # Only the example the tests trigger: a scheduled example (veo_daily_prompts is @daily) would
    # start by itself in this cluster and pay jobs on the shared emulator behind the tests' backs.
    examples = [ROOT / "dags_examples" / "veo_text_to_video.py"]
    for src in [*examples, *(Path(__file__).parent / "dags").glob("*.py")]:
        shutil.copy(src, dags)
    cluster = AirflowCluster(base / "airflow", dags, executor=request.param)
    conn = {"conn_type": "veo", "host": e2e_emulator.url, "password": "test-token"}
    callback_conn = {
        **conn,
        "extra": {"callback_base_url": f"{cluster.url}/veo", "callback_secret": CALLBACK_SECRET},
    }
    # An API that is not there yet: tests start an emulator on this port when they want it up.
    cluster.late_port = free_port()
    late_conn = {**conn, "host": f"http://127.0.0.1:{cluster.late_port}"}
    cluster.env.update(
        {
            "AIRFLOW_CONN_VEO_LATE": json.dumps(late_conn),
            "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn),
            "AIRFLOW_CONN_VEO_CALLBACK": json.dumps(callback_conn),
            "AIRFLOW_CONN_VEO_CAPPED": json.dumps({**conn, "extra": {"daily_job_limit": 2, "max_retries": 1}}),
            "VEO_OUTPUT_DIR": str(base / "videos"),
            "VEO_POLL_INTERVAL": "0.5",
        }
    )
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def emulator(e2e_emulator):
    e2e_emulator.reset()
    return e2e_emulator
