"""The faults the emulator cannot inject: SIGKILLed task processes, a SIGKILLed triggerer, a restarted
api-server, and forged callbacks on a genuinely signed URL.

``Killer`` and ``Chaos`` are threads: a kill must land within ~0.1 s of the moment it aims at (a job
just created, an answer just sent), and a cluster fault takes tens of seconds that the campaign's
main loop spends starting and checking other runs.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.reliability.campaign.dags.veo_campaign_dags import marker
from tests.reliability.campaign.procs import kill_task, runner_pids

if TYPE_CHECKING:
    from tests.reliability.campaign.db import Db
    from tests.reliability.campaign.runner import ActiveRun
    from veo_provider.testing.cluster import AirflowCluster
    from veo_provider.testing.emulator import Job

__all__ = ["Chaos", "KillOrder", "Killer", "forge_callbacks", "job_of"]

PHASES = {"kill_before_submit": "before", "kill_during_submit": "during", "kill_after_submit": "after"}
GONE = {"deferred", "success", "failed", "up_for_retry", "up_for_reschedule", "upstream_failed"}


def job_of(run: ActiveRun, index: int) -> Job | None:
    """The first job the run's emulator made for task ``index`` (by its prompt marker)."""
    mark = marker(run.plan.key, index)
    return next((j for j in run.slot.emulator.jobs if mark in str(j.request.get("prompt", ""))), None)


@dataclasses.dataclass
class KillOrder:
    run: ActiveRun
    phase: str
    scope: str
    offset: float
    done: bool = False
    fire_at: float | None = None

    def finish(self, outcome: str) -> None:
        self.done = True
        self.run.note(f"{self.run.plan.fault}: {outcome}")
        if outcome.startswith("killed"):
            self.run.injected.append(self.run.plan.fault)


class Killer(threading.Thread):
    """Kills a target task's process before / during / right after its submit POST."""

    def __init__(self, db: Db) -> None:
        super().__init__(name="campaign-killer", daemon=True)
        self.db = db
        self.orders: list[KillOrder] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def add(self, run: ActiveRun) -> None:
        p = run.plan
        order = KillOrder(run, PHASES[p.fault], p.param("scope", "runner"), p.param("offset", 0.0))
        with self.lock:
            self.orders.append(order)

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                orders = [o for o in self.orders if not o.done]
                self.orders = orders
            if not orders:
                time.sleep(0.2)
                continue
            try:
                self._round(orders)
            except Exception as exc:  # a DB hiccup: try again on the next round
                print(f"[campaign] killer round failed: {exc!r}", flush=True)
            time.sleep(0.05)

    def _round(self, orders: list[KillOrder]) -> None:
        tis = self.db.tis({o.run.run_id for o in orders})
        pids = runner_pids()
        for order in orders:
            ti = tis.get((order.run.run_id, order.run.plan.target))
            if ti is not None:
                self._step(order, ti, pids.get(ti.id), job_of(order.run, order.run.plan.target))

    def _step(self, order: KillOrder, ti: Any, pid: int | None, job: Job | None) -> None:
        if order.phase == "before":
            if job is not None:
                order.finish("missed: the job existed before the process was seen")
            elif pid is not None and ti.try_number <= 1:
                order.finish(f"killed {kill_task(pid, order.scope)} before the submit ({order.scope})")
            elif ti.state in GONE:
                order.finish(f"missed: task already {ti.state}")
            return
        if job is None:
            if ti.state in GONE:
                order.finish(f"missed: task {ti.state} before any job")
            return
        if order.fire_at is None:
            order.fire_at = job.created_at + (order.offset if order.phase == "after" else 0.5)
        if time.time() < order.fire_at:
            return
        if pid is not None:
            order.finish(f"killed {kill_task(pid, order.scope)} {order.phase} the submit ({order.scope})")
        elif ti.state in GONE or time.time() > order.fire_at + 10:
            order.finish(f"missed: no task process after the job was created (task {ti.state})")


def forge_callbacks(run: ActiveRun, job: Job) -> dict[str, int | None]:
    """POST forged bodies to the job's real signed callback URL; the answers by name."""
    assert job.callback_url
    url = job.callback_url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    sig = query.get("sig_token", "")
    query["sig_token"] = sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")
    tampered = parts._replace(query=urlencode(query)).geturl()
    evil = [{"id": "forged", "video_url": "https://evil.example/forged.mp4", "state": "succeeded"}]
    bodies = {
        "forged_failure": (
            url,
            {"success": False, "task_id": job.task_id, "error": {"code": "x", "message": "FORGED"}},
        ),
        "forged_success": (url, {"success": True, "task_id": job.task_id, "data": evil}),
        "other_task_id": (url, {"success": True, "task_id": "not-this-job", "data": evil}),
        "bad_signature": (tampered, {"success": True, "task_id": job.task_id, "data": evil}),
    }
    answers: dict[str, int | None] = {}
    for name, (target, body) in bodies.items():
        answers[name] = None
        deadline = time.monotonic() + 90
        while answers[name] is None and time.monotonic() < deadline:
            try:  # the api-server may be restarting (another run's fault): a forgery must arrive to count
                answers[name] = httpx.post(target, json=body, timeout=30).status_code
            except httpx.HTTPError:
                time.sleep(2)
    return answers


#: What each forged POST must be answered (200: taken as a wake-up only; the API then decides).
FORGED_EXPECTED = {"forged_failure": 200, "forged_success": 200, "other_task_id": 409, "bad_signature": 403}


class Chaos(threading.Thread):
    """Runs the cluster-wide faults one at a time; ``api_up`` is clear while the api-server is down."""

    def __init__(self, cluster: AirflowCluster, db: Db) -> None:
        super().__init__(name="campaign-chaos", daemon=True)
        self.cluster = cluster
        self.db = db
        self.requests: queue.Queue[ActiveRun] = queue.Queue()
        self.api_up = threading.Event()
        self.api_up.set()
        self.busy = threading.Event()
        self.stopping = threading.Event()
        self.events: list[dict[str, Any]] = []

    def request(self, run: ActiveRun) -> None:
        run.cluster_status = "requested"
        self.busy.set()
        self.requests.put(run)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                run = self.requests.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                event = self._triggerer_kill(run) if run.plan.cluster == "triggerer_kill" else self._api_restart(run)
            except Exception as exc:
                event = {"kind": run.plan.cluster, "error": repr(exc)}
                self._recover()
            event["seed"] = run.plan.seed
            self.events.append(event)
            run.note(f"{run.plan.cluster}: {event}")
            if "error" not in event and not event.get("missed"):
                run.injected.append(str(run.plan.cluster))
            run.cluster_status = "done"
            self.busy.clear()

    def _recover(self) -> None:
        """Bring back whatever a failed fault left down (never leave the cluster half-started)."""
        for name in ["api-server", *self.cluster.triggerer_names]:
            if self.cluster.procs[name].poll() is not None:
                self.cluster.restart(name)
        self.api_up.set()

    def _triggerer_kill(self, run: ActiveRun) -> dict[str, Any]:
        holders: dict[int, int] = {}
        for _ in range(60):  # a trigger row exists a moment before a triggerer takes it
            holders = {k: v for k, v in self.db.trigger_holders(run.run_id).items() if k is not None}
            if holders:
                break
            time.sleep(0.5)
        names = {job: name for name, job in self.cluster.triggerer_jobs.items()}
        victims = sorted((n, job) for job, n in holders.items() if job in names)
        if not victims:
            return {"kind": "triggerer_kill", "missed": f"no assigned trigger ({holders})"}
        held, victim_job = victims[-1]
        name = names[victim_job]
        started = time.monotonic()
        self.cluster.kill(name)
        adopted = None
        while time.monotonic() - started < 90:
            if self.db.triggers_held_by(victim_job) == 0:
                adopted = round(time.monotonic() - started, 1)
                break
            time.sleep(0.5)
        # The survivor alone for a while (15 s > the 10 s health threshold), then the victim comes back.
        time.sleep(max(0.0, 15 - (time.monotonic() - started)))
        self.cluster.restart(name)
        return {"kind": "triggerer_kill", "victim": name, "held": held, "adopted_after_s": adopted}

    def _api_restart(self, run: ActiveRun) -> dict[str, Any]:
        started = time.monotonic()
        self.api_up.clear()
        self.cluster.kill("api-server")
        time.sleep(1.0)
        self.cluster.restart("api-server")
        self.api_up.set()
        down = round(time.monotonic() - started, 1)
        failed = [
            c for j in run.slot.emulator.jobs for c in j.callbacks if c.get("status") is None and not c.get("lost")
        ]
        return {"kind": "api_server_restart", "down_s": down, "callbacks_failed": len(failed)}
