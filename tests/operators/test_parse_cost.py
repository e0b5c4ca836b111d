"""Parsing a DAG file that uses the provider builds no pydantic model and imports no httpx or FastAPI.

Each check runs in a fresh interpreter: ``sys.modules`` of the test process already holds everything.
Airflow itself loads pydantic and httpx for a DAG (``import airflow.sdk`` on 3.3, defining a DAG on
3.0), so what counts is what the provider's tasks add after a DAG of Airflow's own ``@task``s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_DAG_FILE = """
import json, sys
from datetime import datetime
from airflow.sdk import DAG, task

with DAG("baseline", schedule=None, start_date=datetime(2025, 1, 1)):  # what Airflow itself loads for a DAG
    @task
    def noop(i):
        return i

    noop.expand(i=[1, 2])
before = set(sys.modules)
from veo_provider.operators.veo import VeoOperator
from veo_provider.sensors.veo import VeoSensor

with DAG("parse_cost", schedule=None, start_date=datetime(2025, 1, 1)):
    VeoOperator.partial(task_id="generate", model="veo3").expand(prompt=[f"video {i}" for i in range(100)])
    VeoOperator(task_id="one", prompt="a kite", max_jobs_per_dag_run=3, poll_interval=20)

    @task.veo(model="veo3")
    def written(i):
        return f"video {i}"

    written.expand(i=list(range(100)))
    VeoSensor(task_id="wait", veo_task_id="t-1")

from pydantic import BaseModel

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

added = sorted(set(sys.modules) - before)
print(json.dumps({
    "added_roots": sorted({m.split(".")[0] for m in added}),
    "ours": [m for m in added if m.startswith("veo_provider")],
    "models": sorted({c.__module__ for c in subclasses(BaseModel) if c.__module__.startswith("veo_provider")}),
}))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", _DAG_FILE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_a_dag_file_builds_no_pydantic_model_of_ours(parsed: dict[str, list[str]]) -> None:
    assert parsed["models"] == []


@pytest.mark.parametrize("library", ["pydantic", "pydantic_core", "httpx", "httpcore", "fastapi", "starlette"])
def test_parsing_a_dag_file_imports_nothing_more_of_the_heavy_libraries(
    parsed: dict[str, list[str]], library: str
) -> None:
    assert library not in parsed["added_roots"]


@pytest.mark.parametrize(
    "room",
    [
        "veo_provider.hooks",
        "veo_provider.triggers",
        "veo_provider.callbacks",
        "veo_provider.plugin",
        "veo_provider.ledger",
        "veo_provider.models.requests",
        "veo_provider.models.responses",
        "veo_provider.models.records",
        "veo_provider.spending.rules",
        "veo_provider.spending.client",
    ],
)
def test_parsing_a_dag_file_leaves_the_run_time_rooms_unimported(parsed: dict[str, list[str]], room: str) -> None:
    assert [m for m in parsed["ours"] if m == room or m.startswith(f"{room}.")] == []


def test_parsing_a_dag_file_does_not_import_the_exceptions_module(parsed: dict[str, list[str]]) -> None:
    """Its ~40 classes cost every parse ~0.5 ms (figure 6 is measured in milliseconds); a task imports it when it runs."""
    assert "veo_provider.exceptions" not in parsed["ours"]
