"""Test-wide settings and the shared fixtures: a private AIRFLOW_HOME, the mocked API, `airflow dags test`.

Plain helpers and constants are in ``tests/support.py``; the Veo API's answers and the in-memory
stand-ins in ``veo_provider.testing``. Hypothesis runs few examples by default (``dev``) and 200 in
CI (``HYPOTHESIS_PROFILE=ci``, set by ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# Each pytest-xdist worker inherits the controller's environment: it gets an Airflow home (and so a
# metadata database) of its own, or two workers would migrate one SQLite file at once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix=f"veo-airflow-home-{os.environ['PYTEST_XDIST_WORKER']}-")
else:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="veo-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest
import respx
from hypothesis import settings

from tests.support import BASE_URL, SECRET_TOKEN, DagRunResult, airflow_cli, conn_json, migrated_airflow_home
from veo_provider.testing.fakes import FakeStore

__all__ = ["BASE_URL", "SECRET_TOKEN", "conn_json"]  # still importable from here, as tests did

pytest_plugins = ["veo_provider.testing.pytest_plugin"]

settings.register_profile("ci", max_examples=200)
settings.register_profile("dev", max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def veo_conn(monkeypatch: pytest.MonkeyPatch):
    """A `veo_default` connection (env var) pointing at the respx-mocked base URL; call it to change it."""

    def _set(host: str = BASE_URL, token: str = SECRET_TOKEN, conn_id: str = "veo_default", **extra: object) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(host, token, **extra))

    _set()
    return _set


@pytest.fixture
def api(veo_conn):
    """The Veo API, mocked by respx at ``BASE_URL`` (where ``veo_default`` points)."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def store() -> FakeStore:
    """An empty task state store."""
    return FakeStore()


# ------------------------------------------------------------ `airflow dags test` (integration tier)


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """A migrated SQLite Airflow home whose DAGs folder holds the examples and the test DAGs."""
    return migrated_airflow_home(tmp_path_factory.mktemp("airflow-home"))


@pytest.fixture(scope="session")
def _emulator():
    from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

    emu = VeoEmulator(EmulatorConfig(generation_seconds=1.0)).start()
    yield emu
    emu.stop()


@pytest.fixture
def emulator(_emulator):
    """The session's emulator, reset (no jobs, no faults)."""
    _emulator.reset()
    return _emulator


@pytest.fixture
def dags_test(airflow_env, emulator):
    """Run `airflow dags test DAG_ID` as a user would; the connection points at the emulator."""

    def run(dag_id: str, conf: dict | None = None, timeout: float = 180, **conn_extra: Any) -> DagRunResult:
        conn = {"conn_type": "veo", "host": emulator.url, "password": "test-token", "extra": conn_extra}
        env = {**airflow_env, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn)}
        cmd = airflow_cli("dags", "test", dag_id) + (["--conf", json.dumps(conf)] if conf else [])
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:  # say where it stood, not only that it took too long
            printed = b"".join(o for o in (exc.stdout, exc.stderr) if isinstance(o, bytes)).decode(errors="replace")
            pytest.fail(
                f"`airflow dags test {dag_id}` did not end in {timeout:.0f} s; its last output:\n{printed[-6000:]}"
            )
        return DagRunResult(
            proc.returncode, proc.stdout + proc.stderr, Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db"
        )

    return run
