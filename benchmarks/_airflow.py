"""One real Airflow (veo_provider.testing.cluster on PostgreSQL) plus one emulator, shared by figures 1-3.

Starting Airflow costs ~30 s on 2 cores, so ``python -m benchmarks`` starts it once and hands it
to each cluster figure; run alone, a figure starts its own. The benchmark reads the metadata DB
directly (psycopg2): cheaper than the REST API, so the observer disturbs the 2 cores less.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks._common import TOKEN
from veo_provider.testing.cluster import BIN, PG_HOST, PG_PORT, PG_USER, AirflowCluster, postgres_unavailable
from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

__all__ = ["CALLBACK_SECRET", "BenchAirflow", "bench_airflow", "postgres_unavailable"]

ROOT = Path(__file__).resolve().parents[1]
DAGS = Path(__file__).parent / "dags"
CALLBACK_SECRET = "benchmark-callback-secret-0123456789abcdef0123456789"


class BenchAirflow:
    """The cluster, its emulator, and the few things the benchmarks ask of them."""

    def __init__(self, cluster: AirflowCluster, emulator: VeoEmulator) -> None:
        self.cluster = cluster
        self.emu = emulator
        self._db: Any = None
        self._last_job = 0

    # ------------------------------------------------------------------ database
    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on the cluster's metadata DB (autocommit: always fresh)."""
        import psycopg2

        if self._db is None:
            self._db = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.cluster.db)
            self._db.autocommit = True
        with self._db.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()

    def states(self, dag_id: str, run_id: str) -> dict[str, int]:
        rows = self.sql(
            "SELECT coalesce(state, 'none'), count(*) FROM task_instance WHERE dag_id=%s AND run_id=%s GROUP BY 1",
            dag_id,
            run_id,
        )
        return dict(rows)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float, every: float = 1.0) -> float:
        """Poll ``check`` until true; seconds it took (TimeoutError naming ``what`` otherwise)."""
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what}: not reached in {timeout:.0f}s")
            time.sleep(every)
        return time.monotonic() - start

    def trigger(self, dag_id: str) -> str:
        return self.cluster.trigger(dag_id)

    def failures(self, dag_id: str, run_id: str, limit: int = 3) -> list[str]:
        """Why the run's failed task instances failed: the last error line of each one's log."""
        rows = self.sql(
            "SELECT task_id, map_index, try_number FROM task_instance WHERE dag_id=%s AND run_id=%s AND state='failed'",
            dag_id,
            run_id,
        )
        out = []
        for task_id, map_index, attempt in rows[:limit]:
            where = f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/map_index={map_index}/attempt={attempt}.log"
            path = self.cluster.home / "logs" / where
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            errors = [line for line in lines if '"error"' in line or "Error" in line] or lines or ["(no task log)"]
            out.append(f"{task_id}[{map_index}]: {errors[-1][:400]}")
        return out

    def pause(self, dag_id: str, paused: bool) -> None:
        self.cluster.wait_for_dag(dag_id)
        self.cluster.api("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def seeded_run(self, dag_id: str, task_id: str, kind: str, items: list[dict[str, Any]]) -> str:
        """A new run of ``dag_id`` whose ``task_id`` instances are deferred (see ``_seed``); its run id."""
        self.pause(dag_id, True)  # the scheduler leaves a paused DAG's run alone while it is seeded
        run_id = self.trigger(dag_id)
        self.wait_for(
            f"{dag_id}: {len(items)} task instances created",
            lambda: sum(self.states(dag_id, run_id).values()) >= len(items),
            60 * max(1, len(items) / 1000),
            every=0.5,
        )
        spec: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "kind": kind}
        spec |= {"items": items, "timeout_seconds": 7200}
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._seed"],
            input=json.dumps(spec),
            env=self.cluster.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300 * max(1, len(items) / 1000),
        )
        if proc.returncode:
            raise RuntimeError(f"seeding {dag_id} failed:\n{proc.stderr[-3000:]}")
        self.pause(dag_id, False)
        return run_id

    def end_run(self, dag_id: str, run_id: str) -> None:
        """Fail the run: its deferred tasks stop waiting, so the next figure's triggerer starts empty."""
        self.cluster.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})

    # ------------------------------------------------------------------ triggerer
    def triggerer(self) -> psutil.Process:
        return psutil.Process(self.cluster.procs["triggerer"].pid)

    def triggerer_tree(self) -> list[psutil.Process]:
        """The triggerer and its trigger-runner subprocess(es)."""
        root = self.triggerer()
        return [root, *root.children(recursive=True)]

    def api_server_tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.cluster.procs["api-server"].pid)
        return [root, *root.children(recursive=True)]

    def stop_triggerer(self) -> None:
        proc = self.cluster.procs["triggerer"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def start_triggerer(self) -> None:
        """A fresh triggerer process (same command and environment as the cluster's)."""
        self._last_job = self.sql("SELECT coalesce(max(id), 0) FROM job WHERE job_type='TriggererJob'")[0][0]
        log = open(self.cluster.home / "triggerer.log", "ab")  # noqa: SIM115 - closed with the process
        self.cluster.procs["triggerer"] = subprocess.Popen(
            [str(BIN / "airflow"), "triggerer"],
            env=self.cluster.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for("a running triggerer job", self._triggerer_alive, 90, every=0.5)

    def _triggerer_job(self) -> int | None:
        """The id of the newest running TriggererJob with a fresh heartbeat."""
        rows = self.sql(
            "SELECT max(id) FROM job WHERE job_type='TriggererJob' AND state='running' "
            "AND latest_heartbeat > now() - interval '5 seconds'"
        )
        return rows[0][0]

    def _triggerer_alive(self) -> bool:
        if self.cluster.procs["triggerer"].poll() is not None:
            raise RuntimeError(f"the triggerer exited:\n{self.cluster.log_tail('triggerer')}")
        job = self._triggerer_job()
        if job is not None and job > self._last_job:
            self._last_job = job
            return True
        return False

    def wait_quiet(self, what: str, timeout: float = 180, quiet: float = 3.0, cpu_share: float = 0.15) -> float:
        """Wait until the triggerer has been quiet for ``quiet`` seconds: under ``cpu_share`` of a core,
        and no status request at the emulator (every trigger created and past its first check)."""
        from benchmarks._common import usage

        samples: list[tuple[float, float, int]] = []

        def check() -> bool:
            now = time.monotonic()
            samples.append((now, usage(self.triggerer_tree()).cpu_s, self.status_requests()))
            old = [s for s in samples if s[0] <= now - quiet]
            if not old:
                return False
            t0, cpu0, polls0 = old[-1]
            return samples[-1][1] - cpu0 < cpu_share * (now - t0) and samples[-1][2] == polls0

        return self.wait_for(what, check, timeout, every=0.5)

    def status_requests(self) -> int:
        """Status reads the emulator has answered (``/veo/tasks``), all ids of a batch counting once."""
        return self.emu.stats()["requests_per_path"].get("/veo/tasks", 0)

    def running_triggers(self) -> int:
        """Triggers assigned to the current triggerer job."""
        return self.sql("SELECT count(*) FROM trigger WHERE triggerer_id=%s", self._last_job)[0][0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _environment(emu: VeoEmulator, cluster: AirflowCluster, n: int) -> dict[str, str]:
    conn = {"conn_type": "veo", "host": emu.url, "password": TOKEN}
    callback = {**conn, "extra": {"callback_base_url": f"{cluster.url}/veo", "callback_secret": CALLBACK_SECRET}}
    return {
        "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn),
        "AIRFLOW_CONN_VEO_CALLBACK": json.dumps(callback),
        "BENCH_N": str(n),
        # More task instances queued per scheduler loop: 1,000 mapped tasks reach the workers sooner.
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, n)),
        # The triggerer takes all seeded triggers in one loop (default: 50 a loop, 20 s for 1,000).
        "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": str(max(50, n)),
        "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, 2 * n + 100)),
        # Quieter logs: less disk and CPU spent on what the benchmark does not read.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def bench_airflow(n: int, api_workers: int = 1) -> Iterator[BenchAirflow]:
    """Emulator + Airflow (api-server with ``api_workers`` processes, scheduler, dag-processor,
    triggerer, LocalExecutor) on PostgreSQL."""
    if reason := postgres_unavailable():
        raise RuntimeError(f"the cluster benchmarks need PostgreSQL: {reason}")
    base = Path(tempfile.mkdtemp(prefix="veo-bench-"))
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(DAGS / "bench_dags.py", dags)
    emu = VeoEmulator(EmulatorConfig(generation_seconds=3600.0)).start()
    cluster = AirflowCluster(base / "airflow", dags)
    cluster.env.update(_environment(emu, cluster, n))
    cluster.env["AIRFLOW__API__WORKERS"] = str(api_workers)
    bench = BenchAirflow(cluster, emu)
    try:
        cluster.start()
        bench._last_job = bench._triggerer_job() or 0
        # The Execution API builds its versioned routers on first use (~1-2 s of CPU): not a figure's cost.
        httpx.get(f"{cluster.url}/execution/health", timeout=60)
        yield bench
    finally:
        bench.close()
        cluster.stop()
        emu.stop()
        shutil.rmtree(base, ignore_errors=True)
