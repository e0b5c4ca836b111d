"""What the tests share besides fixtures: the mocked API's address and token, and small builders.

Fixtures are in ``tests/conftest.py``; the Veo API's answers in ``veo_provider.testing.payloads``;
in-memory task state store and task instance in ``veo_provider.testing.fakes``; the real Airflow
cluster in ``veo_provider.testing.cluster``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from veo_provider.models.requests import build_request
from veo_provider.operators.veo import VeoOperator

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def airflow_cli(*args: str) -> list[str]:
    """The command line of ``airflow ARGS`` as the tests run it: Airflow's CLI (tests/airflow_cli.py)."""
    return [sys.executable, str(ROOT / "tests" / "airflow_cli.py"), *args]


#: A token value that must never appear in any output.
SECRET_TOKEN = "tok-SECRET-5f1b9c0d-never-print-me"
#: Where respx mocks the Veo API (the ``api`` fixture).
BASE_URL = "https://veo.test"
#: An asynchronous text2video request, as the hook sends it.
ASYNC_TEXT = build_request("videos", action="text2video", model="veo3", prompt="a mug", **{"async": True})


def conn_json(host: str = BASE_URL, token: str = SECRET_TOKEN, **extra: object) -> str:
    return json.dumps({"conn_type": "veo", "host": host, "password": token, "extra": extra})


def op(**kw: Any) -> VeoOperator:
    """A VeoOperator that polls fast, with a valid text2video request unless ``kw`` changes it."""
    args = {"task_id": "veo", "prompt": "a mug", "model": "veo3", "poll_interval": 0.1, "first_poll_delay": 0}
    return VeoOperator(**{**args, **kw})


def ctx(store: Any) -> dict[str, Any]:
    return {"task_state_store": store}


def unmapped(fn: Callable[..., Any], **decorator_args: Any) -> Any:
    """The operator ``@task.veo`` makes of ``fn`` in a DAG of its own."""
    from airflow.sdk import DAG, task

    with DAG("d_taskflow", schedule=None):
        return task.veo(task_id="generate", **decorator_args)(fn)().operator


class Chunks(httpx.SyncByteStream):
    """A response body streamed in the given chunks (a cut, slow or huge download)."""

    def __init__(self, it: Iterable[bytes]) -> None:
        self.it = it

    def __iter__(self):
        yield from self.it


def migrated_airflow_home(home: Path) -> dict[str, str]:
    """The environment of a migrated SQLite Airflow home whose DAGs are the examples and the test DAGs."""
    dags = home / "dags"
    dags.mkdir(parents=True)
    for src in [*(ROOT / "dags_examples").glob("*.py"), *(ROOT / "tests" / "integration" / "dags").glob("*.py")]:
        shutil.copy(src, dags)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "VEO_OUTPUT_DIR": str(home / "videos"),
        "VEO_POLL_INTERVAL": "0.5",
        # Airflow 3.0 prints a failed task's exception through rich: plain, and one line per message.
        "NO_COLOR": "1",
        "COLUMNS": "400",
    }
    migrate = subprocess.run([BIN / "airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return env


LAST_RUN = "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1"


@dataclass
class DagRunResult:
    """What one ``airflow dags test`` printed, and its SQLite metadata database to query."""

    returncode: int
    output: str
    db: Path

    def __post_init__(self) -> None:
        # Airflow 3.0 renders a failed task's exception with rich: styles split the message's text.
        self.output = re.sub(r"\x1b\[[0-9;]*m", "", self.output)

    def says(self, text: str) -> bool:
        """``text`` is in the output, however Airflow wrapped its lines (3.0 wraps exception messages)."""
        return " ".join(text.split()) in " ".join(self.output.split())

    @property
    def succeeded(self) -> bool:
        return "state=success" in self.output and "DagRun Finished" in self.output

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def xcoms(self, dag_id: str, task_id: str, key: str = "return_value") -> list[Any]:
        rows = self.query(
            f"SELECT value FROM xcom WHERE dag_id=? AND task_id=? AND key=? AND run_id = ({LAST_RUN}) ORDER BY map_index",
            dag_id,
            task_id,
            key,
            dag_id,
        )
        return [json.loads(v) if isinstance(v, str | bytes) else v for (v,) in rows]

    def tries(self, dag_id: str, task_id: str) -> list[tuple[int, str, int]]:
        return self.query(
            "SELECT map_index, state, try_number FROM task_instance WHERE dag_id=? AND task_id=? "
            f"AND run_id = ({LAST_RUN}) ORDER BY map_index",
            dag_id,
            task_id,
            dag_id,
        )


def forget_fernet() -> None:
    """Make Airflow read ``[core] fernet_key`` again: it keeps the Fernet it built (3.0 in a global,
    3.1+ in a cache), so a test that sets the key must drop the one built before."""
    from airflow.models import crypto

    cache_clear = getattr(crypto.get_fernet, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
    else:
        crypto._fernet = None  # type: ignore[attr-defined]
