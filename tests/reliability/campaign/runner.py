"""The campaign runner: a rolling pool of concurrent DAG runs on one shared real Airflow cluster.

Every run gets a slot: an emulator of its own (connections ``veo_p<slot>`` to poll,
``veo_c<slot>`` with callback settings), reset and loaded with the run's faults before the run is
triggered. The main loop reads task states from the database once a second, fires the run's
forged callbacks and asks the ``Chaos`` thread for its cluster-wide fault when the moment has
come; the ``Killer`` thread kills task processes at the moment a kill fault aims at. A run ends
when its tasks are done and its callbacks delivered (or at its deadline), and is then judged.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.campaign.dags.veo_campaign_dags import marker
from tests.reliability.campaign.db import Db, TiRow
from tests.reliability.campaign.inject import FORGED_EXPECTED, Chaos, Killer, forge_callbacks, job_of
from tests.reliability.campaign.plan import ANSWER_LOSING, CALLBACK, KILL_FAULTS, RunPlan, emulator_faults
from tests.reliability.campaign.verify import TERMINAL, TaskFacts, TaskVerdict, classify
from veo_provider.testing.cluster import AirflowCluster
from veo_provider.testing.emulator import EmulatorConfig, Job, VeoEmulator, mp4_length, sample_mp4

__all__ = ["ActiveRun", "ClusterRun", "RunResult", "Slot"]

DAGS = Path(__file__).parent / "dags"
#: Seconds a run may take before its unfinished tasks count as hung (3 tries of a 60 s wait fit).
RUN_DEADLINE = 420.0
VIDEO_BYTES = mp4_length(len(sample_mp4()), None)


@dataclasses.dataclass
class Slot:
    index: int
    emulator: VeoEmulator
    busy: bool = False

    def conn(self, mode: str) -> str:
        return f"veo_{'c' if mode == CALLBACK else 'p'}{self.index}"


@dataclasses.dataclass
class ActiveRun:
    plan: RunPlan
    slot: Slot
    run_id: str
    started: float
    injected: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    #: ``none`` (no cluster fault), ``pending``, ``requested``, ``done``.
    cluster_status: str = "none"
    forged: dict[str, int | None] | None = None
    forging: bool = False

    @property
    def dag_id(self) -> str:
        return f"veo_campaign_w{self.plan.width}"

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclasses.dataclass
class RunResult:
    plan: RunPlan
    verdicts: list[TaskVerdict]
    injected: list[str]
    notes: list[str]
    seconds: float
    forged_ok: bool | None
    jobs: list[Job]


class ClusterRun:
    """One cluster (one executor), its slots and threads, running ``plans`` through the pool."""

    def __init__(
        self, executor: str, plans: list[RunPlan], *, base: Path, concurrency: int, token: str, callback_secret: str
    ) -> None:
        self.executor = executor
        self.plans = plans
        self.base = base
        self.concurrency = max(1, min(concurrency, len(plans)))
        self.token = token
        self.callback_secret = callback_secret
        self.out = base / "videos"
        self.results: list[RunResult] = []
        self.slots: list[Slot] = []
        self.all_jobs: list[Job] = []
        self.cluster: AirflowCluster | None = None
        self.chaos: Chaos | None = None

    # ------------------------------------------------------------------------------ set-up

    def _cluster(self) -> AirflowCluster:
        env = {
            "VEO_CAMPAIGN_OUT": str(self.out),
            # A dead triggerer's triggers go to the other one after 10 s without a heartbeat (default 30).
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__CORE__PARALLELISM": "10",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            # The e2e cluster's 20 s would fail every running try during an api-server restart (about
            # 20-50 s here); Airflow's default is 300 s. 90 s still finds a killed worker in time.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "90",
        }
        cluster = AirflowCluster(self.base / "airflow", DAGS, env, self.executor, triggerers=2)
        if self.executor == "CeleryExecutor":
            cluster.env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "8"
        for slot in self.slots:
            conn = {"conn_type": "veo", "host": slot.emulator.url, "password": self.token, "extra": {"timeout": 30}}
            callback = {"callback_base_url": f"{cluster.url}/veo", "callback_secret": self.callback_secret}
            cluster.env[f"AIRFLOW_CONN_VEO_P{slot.index}"] = json.dumps(conn)
            cluster.env[f"AIRFLOW_CONN_VEO_C{slot.index}"] = json.dumps({**conn, "extra": {"timeout": 30, **callback}})
        return cluster

    def run(self, scan: Any = None) -> list[RunResult]:
        """Start everything, run the plans, scan for secrets (``scan(cluster, emulators)``), stop everything."""
        config = EmulatorConfig(token=self.token, callback_retries=1, callback_retry_delay=2.0, callback_timeout=10)
        killer = chaos = None
        try:
            for i in range(self.concurrency):
                self.slots.append(Slot(i, VeoEmulator(config).start()))
            self.cluster = cluster = self._cluster()
            started = time.monotonic()
            cluster.start(timeout=300)
            for width in (2, 3):
                cluster.wait_for_dag(f"veo_campaign_w{width}", timeout=180)
            print(f"[campaign] {self.executor} cluster up in {time.monotonic() - started:.0f}s", flush=True)
            db = Db(cluster.db)
            killer, chaos = Killer(db), Chaos(cluster, db)
            self.chaos = chaos
            killer.start()
            chaos.start()
            self._loop(db, killer, chaos)
            if scan is not None:
                scan(cluster, [s.emulator for s in self.slots])
            db.close()
        finally:
            for thread in (killer, chaos):
                if thread is not None:
                    thread.stopping.set()
                    thread.join(timeout=180)
            if self.cluster is not None:
                self.cluster.stop()
            for slot in self.slots:
                self.all_jobs.extend(slot.emulator.jobs)
                slot.emulator.stop()
        return self.results

    # ------------------------------------------------------------------------------ the pool

    def _loop(self, db: Db, killer: Killer, chaos: Chaos) -> None:
        pending = collections.deque(self.plans)
        active: list[ActiveRun] = []
        while pending or active:
            self._start_runs(pending, active, killer, chaos)
            tis = db.tis(r.run_id for r in active)
            states = db.run_states(r.run_id for r in active)
            for run in list(active):
                rows = [tis.get((run.run_id, i)) for i in range(run.plan.width)]
                if self._tick(run, rows, states.get(run.run_id), chaos):
                    active.remove(run)
                    for order in killer.orders:
                        if order.run is run:
                            order.done = True
                    self._finish(db, run)
            time.sleep(1.0)

    def _start_runs(
        self, pending: collections.deque[RunPlan], active: list[ActiveRun], killer: Killer, chaos: Chaos
    ) -> None:
        while pending and len(active) < self.concurrency and chaos.api_up.is_set():
            # One run with a cluster-wide fault at a time, started as soon as the last one is over
            # (left for the end, they would run one after another with the cluster half idle).
            cluster_busy = any(r.cluster_status in ("pending", "requested") for r in active)
            plan = next((p for p in pending if p.cluster), None) if not cluster_busy else None
            plan = plan or next((p for p in pending if not p.cluster), None)
            if plan is None:
                return
            pending.remove(plan)
            slot = next(s for s in self.slots if not s.busy)
            active.append(self._start(plan, slot, killer))

    def _start(self, plan: RunPlan, slot: Slot, killer: Killer) -> ActiveRun:
        assert self.cluster is not None
        slot.busy = True
        self.all_jobs.extend(slot.emulator.jobs)  # a late job of an earlier run still counts
        slot.emulator.reset()
        slot.emulator.set_faults(emulator_faults(plan))
        run = ActiveRun(plan, slot, f"campaign__{plan.key}", time.monotonic())
        conf = {"run_key": plan.key, "conns": [slot.conn(m) for m in plan.modes]}
        body = {"dag_run_id": run.run_id, "logical_date": None, "conf": conf}
        deadline = time.monotonic() + 180
        while True:
            try:
                self.cluster.api("POST", f"/dags/{run.dag_id}/dagRuns", json=body)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        if plan.fault in KILL_FAULTS:
            killer.add(run)
        if plan.cluster:
            run.cluster_status = "pending"
        return run

    def _tick(self, run: ActiveRun, rows: list[TiRow | None], run_state: str | None, chaos: Chaos) -> bool:
        """One look at a run: fire what is due; True once it is over (done and settled, or past its deadline)."""
        if run.plan.fault == "callback_forged" and run.forged is None and not run.forging and chaos.api_up.is_set():
            self._maybe_forge(run, rows)
        if run.cluster_status == "pending" and not chaos.busy.is_set() and _cluster_moment(run, rows):
            chaos.request(run)
        done = run_state in ("success", "failed") and all(r is not None and r.state in TERMINAL for r in rows)
        elapsed = time.monotonic() - run.started
        if run.cluster_status == "requested" or run.forging:
            return False  # never judge a run while a fault aimed at it is still under way
        if done and run.cluster_status == "pending":
            run.note(f"{run.plan.cluster}: missed (the run finished before its moment)")
            run.cluster_status = "done"
        return (done and _callbacks_settled(run)) or elapsed > RUN_DEADLINE

    def _maybe_forge(self, run: ActiveRun, rows: list[TiRow | None]) -> None:
        row = rows[run.plan.target]
        job = job_of(run, run.plan.target)
        if row is None or row.state != "deferred" or job is None or not job.callback_url or job.remaining() < 8:
            return
        run.forging = True

        def forge() -> None:
            try:
                run.forged = forge_callbacks(run, job)
                if run.forged == FORGED_EXPECTED:
                    run.injected.append("callback_forged")
            finally:
                run.forging = False

        threading.Thread(target=forge, name=f"forge-{run.plan.seed}", daemon=True).start()

    # ------------------------------------------------------------------------------ judging

    def _finish(self, db: Db, run: ActiveRun) -> None:
        assert self.cluster is not None
        tis = db.tis([run.run_id])
        xcoms, ledgers, mismatches = db.xcoms(run.run_id), db.ledgers(run.run_id), db.state_mismatches(run.run_id)
        jobs = run.slot.emulator.jobs
        verdicts = []
        for i, mode in enumerate(run.plan.modes):
            row = tis.get((run.run_id, i))
            path = self.out / run.plan.key / f"{i}.mp4"
            facts = TaskFacts(
                index=i,
                mode=mode,
                state=row.state if row else None,
                try_number=row.try_number if row else 0,
                xcom=xcoms.get(i),
                ledger=ledgers.get(i),
                file_size=path.stat().st_size if path.exists() else None,
                jobs=[j for j in jobs if marker(run.plan.key, i) in str(j.request.get("prompt", ""))],
                state_mismatches=mismatches.get(i, 0),
            )
            aimed = i == run.plan.target
            job_failed = run.plan.fault == "job_failed" and aimed
            answer_lost = run.plan.fault in ANSWER_LOSING and aimed
            verdicts.append(
                classify(facts, expected_size=VIDEO_BYTES, job_failed_expected=job_failed, answer_lost=answer_lost)
            )
        if any(v.outcome == "hung" for v in verdicts):
            try:
                self.cluster.api("PATCH", f"/dags/{run.dag_id}/dagRuns/{run.run_id}", json={"state": "failed"})
            except httpx.HTTPError as exc:
                run.note(f"could not fail the hung run: {exc}")
        if run.plan.fault not in (*KILL_FAULTS, "callback_forged") and run.plan.fault != "none":
            run.injected.append(run.plan.fault)  # emulator faults: armed before the run started
        forged_ok = None
        if run.plan.fault == "callback_forged" and run.forged and None not in run.forged.values():
            forged_ok = run.forged == FORGED_EXPECTED  # unanswered forgeries were not injected
        if run.plan.fault == "callback_forged" and run.forged != FORGED_EXPECTED:
            run.note(f"forged callbacks answered {run.forged}, expected {FORGED_EXPECTED}")
        result = RunResult(
            run.plan, verdicts, run.injected, run.notes, time.monotonic() - run.started, forged_ok, list(jobs)
        )
        self.results.append(result)
        run.slot.busy = False
        _print_result(len(self.results), len(self.plans), result)


def _cluster_moment(run: ActiveRun, rows: list[TiRow | None]) -> bool:
    """Is it time for the run's cluster-wide fault (its jobs waiting, or its callbacks about to come)?"""
    jobs = run.slot.emulator.jobs
    deferred = [i for i, r in enumerate(rows) if r is not None and r.state == "deferred" and r.trigger_id]
    if run.plan.cluster == "triggerer_kill":
        return len(deferred) >= max(1, run.plan.width - 1) and any(j.remaining() > 10 for j in jobs)
    callback_jobs = [j for j in jobs if j.mode == "callback"]
    return bool(deferred) and any(0 < j.remaining() <= 2.0 for j in callback_jobs)


def _callbacks_settled(run: ActiveRun) -> bool:
    """Every callback the run's emulator owes has been attempted (late ones must change nothing)."""
    now = time.time()
    for job in run.slot.emulator.jobs:
        if job.mode != "callback":
            continue
        due = job.finished_at + job.callback_delay
        if now < due + 3 or (not job.callbacks and now < due + 40):
            return False
    return True


def _print_result(n: int, total: int, result: RunResult) -> None:
    outcomes = " ".join(v.outcome for v in result.verdicts)
    paid = sum(v.paid for v in result.verdicts)
    print(
        f"[campaign] {n}/{total} {result.plan.describe()} -> {outcomes} (paid {paid}, "
        f"tries {[v.tries for v in result.verdicts]}) {result.seconds:.0f}s",
        flush=True,
    )
    for verdict in result.verdicts:
        if verdict.outcome not in ("ok", "expected_failure"):
            print(
                f"[campaign]     task {verdict.index} ({verdict.mode}): {verdict.outcome}: {verdict.reason}", flush=True
            )
    for note in result.notes:
        print(f"[campaign]     {note}", flush=True)
