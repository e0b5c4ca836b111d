"""Figure 2: a callback storm through the real receiver in a running api-server.

N VeoOperator tasks wait in callback mode (the safety net a day away, so only callbacks wake
them); their jobs finish and their signed callbacks arrive at 200/s, one in ten delivered twice
(a vendor retry). We measure the receiver's answer time and callback -> task instance leaves
``deferred`` (polled in the metadata DB every 20 ms), and count lost resumes (an accepted
callback whose task never left ``deferred``) and double resumes (a task resumed twice, or a
duplicate answered ``resumed``). The baseline is the same POSTs at the same rate to a trivial
route of the api-server (``/api/v2/monitor/health``: 405, no plugin, no database), measured just
before; the api-server's CPU per request is measured for both. The sender is its
own process, so its timings do not share a GIL with the emulator or the DB poller.

    python -m benchmarks.bench_callbacks [--smoke] [--tasks N] [--api-workers W]

``--api-workers 2`` runs the api-server with two worker processes (``[api] workers``; the cluster's
default is one), ``--tasks 60`` a smaller storm at the same rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._airflow import CALLBACK_SECRET, ROOT, BenchAirflow, bench_airflow
from benchmarks._common import Row, Summary, child_json, parser, percentile, usage
from benchmarks.bench_triggerer import submit_jobs
from veo_provider.testing.emulator import Job

FULL: dict[str, Any] = {"n": 1000, "rate": 200.0, "observe": 10.0}
SMOKE: dict[str, Any] = {"n": 5, "rate": 200.0, "observe": 120.0}
DAG_ID, TASK_ID, CONN_ID = "bench_storm", "generate", "veo_callback"
#: One callback in this many is delivered a second time, 200 deliveries (~1 s) later.
DUPLICATE_EVERY = 10


# ------------------------------------------------------------------ the sender (own process)


async def _send(deliveries: list[dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    """Open loop: delivery i leaves at start + i/rate, whatever the answers before it took."""
    import httpx

    results: list[dict[str, Any]] = [{} for _ in deliveries]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int, d: dict[str, Any]) -> None:
            sent = time.monotonic()
            try:
                r = await client.request(d["method"], d["url"], json=d.get("body"))
                status, answer = r.status_code, (r.json() if d.get("body") else None)
            except Exception as exc:
                status, answer = 0, repr(exc)
            results[i] = {"sent": sent, "answered": time.monotonic(), "status": status, "answer": answer}

        start = time.monotonic()
        tasks = []
        for i, d in enumerate(deliveries):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i, d)))
        await asyncio.gather(*tasks)
    return results


def _deliver(deliveries: list[dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec:
        json.dump({"deliveries": deliveries, "rate": rate}, spec)
        spec.flush()
        return child_json("benchmarks.bench_callbacks", ["--sender", spec.name], "the sender", timeout=600, cwd=ROOT)


# ------------------------------------------------------------------ the DB poller


class _Poller(threading.Thread):
    """Watches the run's task instances: when each first left ``deferred``, and whether it came back."""

    def __init__(self, b: BenchAirflow, run_id: str) -> None:
        super().__init__(daemon=True)
        self.b, self.run_id = b, run_id
        self.left: dict[int, float] = {}
        self.came_back: set[int] = set()
        self.states: dict[int, str] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg2

        from veo_provider.testing.cluster import PG_HOST, PG_PORT, PG_USER

        db = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.b.cluster.db)
        db.autocommit = True
        query = "SELECT map_index, state FROM task_instance WHERE dag_id=%s AND run_id=%s AND task_id=%s"
        try:
            with db.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute(query, (DAG_ID, self.run_id, TASK_ID))
                    now = time.monotonic()
                    for map_index, state in cur.fetchall():
                        self.states[map_index] = state
                        if state != "deferred":
                            self.left.setdefault(map_index, now)
                        elif map_index in self.left:
                            self.came_back.add(map_index)
                    time.sleep(0.02)
        finally:
            db.close()


# ------------------------------------------------------------------ the figure


def _waiting_tasks(b: BenchAirflow, n: int) -> tuple[str, list[dict[str, Any]]]:
    """N tasks deferred in callback mode on jobs that run for an hour; (run_id, their jobs)."""
    from veo_provider.ledger import LedgerEntry, fingerprint
    from veo_provider.resume_hold import CALLBACK_FIRST_CHECK

    b.emu.set_faults(generation_seconds=3600.0)
    jobs = submit_jobs(b.emu.url, n, f"storm {secrets.token_hex(4)}")
    now = time.time()
    first_check_at = now + CALLBACK_FIRST_CHECK
    trigger = {"conn_id": CONN_ID, "deadline": now + 7200, "poll_interval": 86400.0, "wait_mode": "callback"}
    trigger["first_check_at"] = first_check_at
    items = []
    for i, job in enumerate(jobs):
        job["key"] = key = secrets.token_hex(16)
        asked = fingerprint("/veo/videos", {k: v for k, v in job["body"].items() if k != "async"})
        entry = LedgerEntry(state="submitting", key=key, endpoint="videos", fingerprint=asked, conn_id=CONN_ID)
        item = {"map_index": i, "trigger": {**trigger, "veo_task_id": job["task_id"], "submission_key": key}}
        items.append({**item, "ledger": entry.submitted(job["task_id"], None).dump()})
    run_id = b.seeded_run(DAG_ID, TASK_ID, "veo", items)
    b.wait_for(f"{n} triggers in the triggerer", lambda: b.running_triggers() >= n, 180, every=0.5)
    # Past the one early check of every trigger (it finds the job running): only callbacks wake them now.
    time.sleep(max(0.0, first_check_at - time.time()))
    b.wait_quiet(f"{n} callback-mode triggers created and past their first check")
    return run_id, jobs


def _job(b: BenchAirflow, task_id: str) -> Job:
    job = b.emu.state.job(task_id)
    assert job is not None, f"the emulator lost job {task_id}"
    return job


def _callbacks(b: BenchAirflow, run_id: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signed callbacks of the jobs (as if finished now); duplicates ~1 s after their original."""
    from veo_provider.callbacks.signing import CallbackTarget, sign_callback_url

    originals = []
    for i, job in enumerate(jobs):
        emulated = _job(b, job["task_id"])
        emulated.generation_seconds = time.time() - emulated.created_at  # only to build the final body
        body = emulated.final_body()
        emulated.generation_seconds = 3600.0  # done only when its callback is about to leave (see run)
        target = CallbackTarget(DAG_ID, run_id, TASK_ID, i, job["key"], CONN_ID, int(time.time() + 3600))
        url = sign_callback_url(f"{b.cluster.url}/veo", target, CALLBACK_SECRET)
        originals.append({"method": "POST", "url": url, "body": body, "map_index": i})
    later = {i + 200: originals[i] for i in range(0, len(originals), DUPLICATE_EVERY)}
    out = []
    for i, original in enumerate(originals):
        out.append(original)
        if i in later:
            out.append({**later.pop(i), "duplicate": True})
    return out + [{**d, "duplicate": True} for d in later.values()]


def _outcome(deliveries: list[dict[str, Any]], results: list[dict[str, Any]], poller: _Poller) -> dict[str, Any]:
    """Latencies to leaving ``deferred``; lost and double resumes (which tasks, for the notes).

    Copies are answered in any order under load, so a duplicate may be the copy that resumes:
    a double resume is a task resumed by two answers, or seen ``deferred`` again after leaving.
    """
    resumed: dict[int, int] = {}
    leave, refused = [], []
    for d, r in zip(deliveries, results, strict=True):
        if r["status"] != 200 or not isinstance(r["answer"], dict):
            refused.append((d["map_index"], r["status"], str(r["answer"])[:200]))
        elif r["answer"].get("resumed"):
            resumed[d["map_index"]] = resumed.get(d["map_index"], 0) + 1
        if not d.get("duplicate") and d["map_index"] in poller.left:
            leave.append(poller.left[d["map_index"]] - r["sent"])
    never_left = [d["map_index"] for d in deliveries if not d.get("duplicate") and d["map_index"] not in poller.left]
    twice = [m for m, k in resumed.items() if k > 1]
    why = {"refused": refused[:5], "never left deferred": never_left[:10]}
    why |= {"resumed twice": twice[:10], "deferred again": sorted(poller.came_back)[:10]}
    return {"leave": leave, "lost": len(refused) + len(never_left), "double": len({*twice, *poller.came_back}),
            "why": why}  # fmt: skip


Results = list[dict[str, Any]]


def _storm(
    b: BenchAirflow, run_id: str, jobs: list[dict[str, Any]], deliveries: list[dict[str, Any]], rate: float
) -> tuple[Results, Results, _Poller, dict[str, float]]:
    """The baseline POSTs, then the storm with the DB poller running; the api-server's CPU per request of each."""

    def api_cpu() -> float:
        return usage(b.api_server_tree()).cpu_s

    trivial = f"{b.cluster.url}/api/v2/monitor/health"  # no plugin, no database: answers 405 to a POST
    # The resumed tasks wait (their DAG paused) until every answer is in: on 2 shared cores their
    # worker runs and Execution API calls would be billed to the callbacks, which wake them only.
    b.pause(DAG_ID, True)
    cpu0 = api_cpu()
    base = _deliver([{**d, "url": trivial} for d in deliveries], rate)
    cpu1 = api_cpu()
    poller = _Poller(b, run_id)
    poller.start()
    for job in jobs:  # the jobs finish now; their callbacks leave over the next seconds
        emulated = _job(b, job["task_id"])
        emulated.generation_seconds = time.time() - emulated.created_at
    results = _deliver(deliveries, rate)
    cpu = {"base": (cpu1 - cpu0) / len(base) * 1000, "storm": (api_cpu() - cpu1) / len(results) * 1000}
    b.pause(DAG_ID, False)  # now the resumed tasks run (to the end at smoke size)
    return base, results, poller, cpu


def run(b: BenchAirflow, smoke: bool, tasks: int | None = None) -> Summary:
    started = time.monotonic()
    size = {**(SMOKE if smoke else FULL), **({"n": tasks} if tasks else {})}
    # One more task than the storm's: its callback warms the receiver up (first-use imports, SQL
    # compilation, the connection's secret), as any callback before a storm would have.
    run_id, jobs = _waiting_tasks(b, size["n"] + 1)
    signed = _callbacks(b, run_id, jobs)
    jobs, warm_up = jobs[:-1], jobs[-1]
    deliveries = [d for d in signed if d["map_index"] != size["n"]]
    emulated = _job(b, warm_up["task_id"])
    emulated.generation_seconds = time.time() - emulated.created_at
    warmed = _deliver([d for d in signed if d["map_index"] == size["n"] and not d.get("duplicate")], 1.0)
    assert [r["status"] for r in warmed] == [200], f"the warm-up callback was refused: {warmed}"
    base, results, poller, cpu = _storm(b, run_id, jobs, deliveries, size["rate"])
    deadline = time.monotonic() + size["observe"]  # full size: the 1,000 resumed tasks take minutes to run
    while time.monotonic() < deadline and b.states(DAG_ID, run_id).get("success", 0) <= size["n"]:
        time.sleep(0.5)
    poller.stop.set()
    poller.join()
    failures = b.failures(DAG_ID, run_id)
    b.end_run(DAG_ID, run_id)
    summary = _summary(size, smoke, base, results, _outcome(deliveries, results, poller))
    within = cpu["storm"] <= 2 * cpu["base"] if cpu["base"] > 0 else None  # smoke: too few requests to tell
    summary.rows.insert(2, Row("api-server CPU per request (ms)", cpu["storm"], cpu["base"], "<= 2x", within))
    states: dict[str, int] = {}
    for state in poller.states.values():
        states[str(state)] = states.get(str(state), 0) + 1
    summary.notes["task states at the end"] = states
    if failures:
        summary.notes["why tasks failed (first 3)"] = failures
    summary.seconds = time.monotonic() - started
    return summary


def _summary(
    size: dict[str, Any], smoke: bool, base: list[dict[str, Any]], results: list[dict[str, Any]], got: dict[str, Any]
) -> Summary:
    answer_ms = [(r["answered"] - r["sent"]) * 1000 for r in results]
    base_ms = [(r["answered"] - r["sent"]) * 1000 for r in base]
    leave_ms = [x * 1000 for x in got["leave"]]
    summary = Summary(2, f"callback storm, {size['n']} tasks at {size['rate']:.0f}/s", "POST /api/v2/monitor/health",
                      "smoke" if smoke else "full")  # fmt: skip
    p = percentile
    summary.rows = [
        Row(
            "receiver answer p50 (ms)",
            p(answer_ms, 50),
            p(base_ms, 50),
            "<= 5x",
            p(answer_ms, 50) <= 5 * p(base_ms, 50),
        ),
        Row(
            "receiver answer p99 (ms)",
            p(answer_ms, 99),
            p(base_ms, 99),
            "<= 10x",
            p(answer_ms, 99) <= 10 * p(base_ms, 99),
        ),
        Row("callback -> leaves deferred p50 (ms)", p(leave_ms, 50), None, "<= 250 ms", p(leave_ms, 50) <= 250),
        Row("callback -> leaves deferred p99 (ms)", p(leave_ms, 99), None, "<= 1000 ms", p(leave_ms, 99) <= 1000),
        Row("lost resumes", got["lost"], None, "0", got["lost"] == 0),
        Row("double resumes", got["double"], None, "0", got["double"] == 0),
    ]
    summary.notes = {
        "deliveries": f"{len(results)} ({len(results) - size['n']} duplicates)",
        "DB poll resolution": "20 ms + one query",
    }
    if got["lost"] or got["double"]:
        summary.notes["lost/double"] = {k: v for k, v in got["why"].items() if v}
    return summary


def main(argv: Sequence[str] | None = None) -> Any:
    p = parser(__doc__)
    p.add_argument("--tasks", type=int, help="waiting tasks (default 1,000; 5 with --smoke)")
    p.add_argument("--api-workers", type=int, default=1, help="api-server worker processes (default 1)")
    p.add_argument("--sender", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sender:
        with open(args.sender) as fh:
            spec = json.load(fh)
        results = asyncio.run(_send(spec["deliveries"], spec["rate"]))
        print(json.dumps(results))
        return results
    with bench_airflow(args.tasks or (SMOKE if args.smoke else FULL)["n"], api_workers=args.api_workers) as b:
        summary = run(b, args.smoke, args.tasks)
        summary.notes["api-server workers"] = args.api_workers
        return summary.print()


if __name__ == "__main__":
    main()
