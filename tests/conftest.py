"""Test-wide settings: a private AIRFLOW_HOME, unit-test mode, and a token we can look for in output."""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="veo-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest

pytest_plugins = ["veo_provider.testing.pytest_plugin"]

#: A token value that must never appear in any output.
SECRET_TOKEN = "tok-SECRET-5f1b9c0d-never-print-me"
BASE_URL = "https://veo.test"


def conn_json(host: str = BASE_URL, token: str = SECRET_TOKEN, **extra: object) -> str:
    return json.dumps({"conn_type": "veo", "host": host, "password": token, "extra": extra})


@pytest.fixture
def veo_conn(monkeypatch: pytest.MonkeyPatch):
    """A `veo_default` connection (env var) pointing at the respx-mocked base URL."""

    def _set(host: str = BASE_URL, token: str = SECRET_TOKEN, conn_id: str = "veo_default", **extra: object) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(host, token, **extra))

    _set()
    return _set
