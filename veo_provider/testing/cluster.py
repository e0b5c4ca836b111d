"""A real Airflow cluster on PostgreSQL for end-to-end tests: every component as its own process.

api-server, scheduler, dag-processor, triggerer(s) and, with ``executor="CeleryExecutor"``, a Celery
worker on Redis. It is the only way to see a deferred task resumed by a callback, a triggerer running
many waits at once, or a retry after a worker process was killed; this provider's end-to-end tests,
benchmarks and UI check use it, and so can your own DAG tests (``running_cluster(home, dags)``).
``triggerers=2`` runs two triggerers (``triggerer-1``, ``triggerer-2``) for HA tests; ``kill()``
and ``restart()`` crash and bring back one component (the fault campaign's cluster-wide faults).
PostgreSQL and Redis are found through ``VEO_E2E_PG_HOST/PORT/USER`` and ``VEO_E2E_REDIS_HOST/PORT``
(default: 127.0.0.1, user ``postgres``); it needs ``psycopg2`` and, for Celery, ``redis`` (the
``test`` extra). No pytest here: benchmarks and tools import it outside any test run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

PG_HOST = os.environ.get("VEO_E2E_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("VEO_E2E_PG_PORT", "5432"))
PG_USER = os.environ.get("VEO_E2E_PG_USER", "postgres")
REDIS_HOST = os.environ.get("VEO_E2E_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("VEO_E2E_REDIS_PORT", "6379"))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_unavailable() -> str | None:
    """Why the e2e tests cannot run here, or None."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install -e '.[test]')"
    try:
        psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable at {PG_USER}@{PG_HOST}:{PG_PORT} ({str(exc).strip()})"
    return None


def redis_unavailable() -> str | None:
    """Why the Celery variant cannot run here, or None."""
    try:
        import redis
    except ImportError:
        return "the redis client is not installed (pip install -e '.[test]')"
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc})"
    return None


def admin_sql(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


class AirflowCluster:
    """Starts every Airflow component as its own process, on a database of its own.

    ``executor`` is ``LocalExecutor`` or ``CeleryExecutor`` (Redis broker, a Celery worker process).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        extra_env: dict[str, str] | None = None,
        executor: str = "LocalExecutor",
        triggerers: int = 1,
    ) -> None:
        self.executor = executor
        self.triggerer_names = (
            ["triggerer"] if triggerers == 1 else [f"triggerer-{i}" for i in range(1, triggerers + 1)]
        )
        self.components = ["api-server", "scheduler", "dag-processor", *self.triggerer_names]
        #: Each component's own settings on top of ``env`` (a triggerer's log server port).
        self.component_env: dict[str, dict[str, str]] = {
            name: {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())} for name in self.triggerer_names
        }
        #: The TriggererJob id of each running triggerer (its ``trigger.triggerer_id``), once registered.
        self.triggerer_jobs: dict[str, int] = {}
        if executor == "CeleryExecutor":
            self.components.append("celery-worker")
        self.home = home
        self.dags_folder = dags_folder
        self.port = free_port()
        self.db = f"veo_e2e_{secrets.token_hex(4)}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.db}",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.url,
            # 3.3's default; before it 4 workers, each loading Airflow: minutes to answer on 2 cores.
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",  # xcom(): Airflow 3.0 refuses it otherwise
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            **(extra_env or {}),
        }
        if executor == "CeleryExecutor":
            db_url = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
                "postgresql+psycopg2", "db+postgresql+psycopg2"
            )
            self.env.update(
                {
                    # A Redis database number of its own, so runs on one machine do not share queues.
                    "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{secrets.randbelow(15) + 1}",
                    "AIRFLOW__CELERY__RESULT_BACKEND": db_url,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
                }
            )
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self._token: str | None = None
        self._dead_jobs: set[int] = set()
        #: A port with no API behind it until a test starts one (connection ``veo_late``).
        self.late_port: int | None = None

    # ----------------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 120) -> AirflowCluster:
        admin_sql(f"CREATE DATABASE {self.db}")
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([BIN / "airflow", "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
        for name in self.components:
            self._spawn(name)
            if len(self.triggerer_names) > 1 and name in self.triggerer_names:
                # One at a time, so that each TriggererJob row is known to belong to its process.
                self.triggerer_jobs[name] = self._wait_triggerer_job(name, timeout)
        self.wait_healthy(timeout)
        return self

    def _spawn(self, name: str) -> None:
        if name == "celery-worker":
            args = [str(BIN / "airflow"), "celery", "worker"]
        else:
            args = [str(BIN / "airflow"), "triggerer" if name in self.triggerer_names else name]
        if name == "api-server":
            args += ["--port", str(self.port)]
        env = {**self.env, **self.component_env.get(name, {})}
        with open(self.home / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a component's whole process group (SIGKILL: a crash) and reap it."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their leader
        dead = self.triggerer_jobs.pop(name, None)
        if dead is not None:
            self._dead_jobs.add(dead)  # its row stays "running" (no end_date) after a SIGKILL

    def restart(self, name: str, timeout: float = 120) -> None:
        """Start a killed component again and wait until it is back (api-server: answering; triggerer: registered)."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is still running: kill() it first")
        self._spawn(name)
        if name in self.triggerer_names:
            self.triggerer_jobs[name] = self._wait_triggerer_job(name, timeout)
        elif name == "api-server":
            self.wait_healthy(timeout)

    def _wait_triggerer_job(self, name: str, timeout: float) -> int:
        """The id of the TriggererJob row the just-started triggerer ``name`` registered."""
        known = set(self.triggerer_jobs.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"airflow {name} exited early:\n{self.log_tail(name)}")
            rows = self.sql("SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL ORDER BY id")
            fresh = [r[0] for r in rows if r[0] not in known and r[0] not in self._dead_jobs]
            if fresh:
                return fresh[0]
            time.sleep(0.5)
        raise RuntimeError(f"{name} registered no TriggererJob in {timeout}s:\n{self.log_tail(name)}")

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on this cluster's metadata database (one short connection)."""
        import psycopg2

        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.db, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            admin_sql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        if os.environ.get("VEO_E2E_KEEP") is None:
            shutil.rmtree(self.home, ignore_errors=True)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited early:\n{self.log_tail(name)}")
            try:
                last = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).json()
                if all(last.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "triggerer")):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Airflow did not become healthy in {timeout}s (last health: {last})")

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.home / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # ----------------------------------------------------------------------------- REST API

    def api(self, method: str, path: str, **kw: Any) -> Any:
        if self._token is None:
            self._token = httpx.get(f"{self.url}/auth/token", timeout=10).json()["access_token"]
        r = httpx.request(
            method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}, timeout=30, **kw
        )
        r.raise_for_status()
        return r.json() if r.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPStatusError):
                if self.api("GET", f"/dags/{dag_id}"):
                    return
            time.sleep(1)
        raise RuntimeError(f"DAG {dag_id} was not parsed in {timeout}s:\n{self.log_tail('dag-processor')}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.wait_for_dag(dag_id)
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise TimeoutError(
            f"run {dag_id}/{run_id} still {state} after {timeout}s; tis: {self.task_instances(dag_id, run_id)}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True},
        )
        return entry["value"]


@contextlib.contextmanager
def running_cluster(
    home: Path,
    dags_folder: Path,
    extra_env: dict[str, str] | None = None,
    executor: str = "LocalExecutor",
    triggerers: int = 1,
) -> Iterator[AirflowCluster]:
    cluster = AirflowCluster(home, dags_folder, extra_env, executor, triggerers)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
