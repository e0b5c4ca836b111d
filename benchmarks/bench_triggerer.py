"""Figure 1: N deferred VeoOperator tasks waiting in one real triggerer vs N on Airflow's DateTimeTrigger.

The floor is the cheapest wait Airflow has (``DateTimeSensorAsync``'s trigger sleeps in one-hour
steps). Each side gets a fresh triggerer process: its own idle RSS and CPU are measured first,
then its N task instances are deferred, and the figure is what the wait *adds* (RSS, CPU per
minute) plus the Veo API status requests per job per minute (emulator counters), in poll mode
with VeoOperator's defaults (poll every 15 s, batched into ``retrieve_batch`` calls of 50 ids).

The waiting window is a whole number of poll ticks, started half-way between two ticks: a window
that held two ticks' work in one run and three in the next made the CPU figure swing by half.

    python -m benchmarks.bench_triggerer [--smoke] [--waits N]

``--waits 10000`` is the scale figure: the same two sides at N waits (the triggerer's capacity is
raised to fit); its per-wait rows, against the 1,000-wait run's, say whether the cost is linear.
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx

from benchmarks._airflow import BenchAirflow, bench_airflow
from benchmarks._common import TOKEN, Row, Summary, parser, usage

FULL: dict[str, Any] = {"n": 1000, "idle": 30.0, "ticks": 8}  # 4 ticks: the floor moved by +-20 % run to run
SMOKE: dict[str, Any] = {"n": 5, "idle": 2.0, "ticks": 1}
FAR = "2099-01-01T00:00:00+00:00"


def _operator_default(name: str) -> Any:
    """VeoOperator's own default, so the benchmark follows the operator if it changes."""
    from veo_provider.operators.veo import VeoOperator

    return inspect.signature(VeoOperator.__init__).parameters[name].default


def submit_jobs(url: str, n: int, tag: str) -> list[dict[str, Any]]:
    """N paid jobs in async mode straight at the emulator (what N VeoOperator submissions create)."""
    headers = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        out = []
        for i in range(n):
            body = {"action": "text2video", "model": "veo3", "prompt": f"{tag} {i}", "async": True}
            answer = client.post(f"{url}/veo/videos", json=body).json()
            out.append({"task_id": answer["task_id"], "body": body})
        return out


def _items(kind: str, jobs: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    if kind == "floor":
        return [{"map_index": i, "trigger": {"moment": FAR}} for i in range(n)]
    now = time.time()
    trigger = {
        "conn_id": "veo_default",
        "deadline": now + _operator_default("timeout"),
        "first_check_at": now + _operator_default("first_poll_delay"),
        "poll_interval": _operator_default("poll_interval"),
        "wait_mode": "poll",
    }
    return [
        {"map_index": i, "trigger": {**trigger, "veo_task_id": job["task_id"], "submission_key": secrets.token_hex(16)}}
        for i, job in enumerate(jobs)
    ]


def _window(b: BenchAirflow, seconds: float) -> dict[str, float]:
    """The triggerer over ``seconds``: mean RSS (sampled each second), CPU seconds used, status requests sent."""
    polls = b.status_requests()
    start = usage(b.triggerer_tree())
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
        samples.append(usage(b.triggerer_tree()).rss_mb)
    cpu = usage(b.triggerer_tree()).cpu_s - start.cpu_s
    return {"rss_mb": sum(samples) / len(samples), "cpu_s": cpu, "polls": b.status_requests() - polls}


def _side(b: BenchAirflow, kind: str, size: dict[str, Any]) -> dict[str, float]:
    """One side in a fresh triggerer: idle first, then N waits; what the waits add."""
    n, dag_id, task_id = size["n"], *(("bench_floor", "wait") if kind == "floor" else ("bench_poll", "generate"))
    b.stop_triggerer()
    b.start_triggerer()
    b.wait_quiet("a fresh triggerer, idle")
    idle = _window(b, size["idle"])
    jobs = submit_jobs(b.emu.url, n, f"triggerer {secrets.token_hex(4)}") if kind == "veo" else []
    items = _items(kind, jobs, n)
    polls = b.status_requests()
    run_id = b.seeded_run(dag_id, task_id, kind, items)
    b.wait_for(f"{n} triggers in the triggerer", lambda: b.running_triggers() >= n, 180 * max(1, n / 1000), every=0.5)
    first_check = max((i["trigger"].get("first_check_at", 0) for i in items), default=0)
    time.sleep(max(0.0, first_check - time.time()))
    b.wait_quiet(f"{n} {kind} triggers created and past their first check", timeout=180 * max(1, n / 1000))
    first_polls = b.status_requests() - polls
    interval = float(_operator_default("poll_interval"))
    window = size["ticks"] * interval
    time.sleep((interval / 2 - time.time() % interval) % interval)  # half-way between two ticks
    waiting = _window(b, window)
    b.end_run(dag_id, run_id)
    minutes = window / 60
    return {
        "rss_mb": waiting["rss_mb"] - idle["rss_mb"],
        "cpu_s_per_min": (waiting["cpu_s"] / window - idle["cpu_s"] / size["idle"]) * 60,
        "cpu_total_s_per_min": waiting["cpu_s"] / minutes,
        "idle_rss_mb": idle["rss_mb"],
        "polls_per_job_min": waiting["polls"] / n / minutes,
        "first_polls": first_polls,
    }


def run(b: BenchAirflow, smoke: bool, waits: int | None = None) -> Summary:
    started = time.monotonic()
    size = {**(SMOKE if smoke else FULL), **({"n": waits} if waits else {})}
    b.emu.set_faults(generation_seconds=3600.0)  # the jobs outlast the benchmark: only waiting is measured
    floor = _side(b, "floor", size)
    veo = _side(b, "veo", size)
    n = size["n"]
    summary = Summary(
        1, f"{n} waits in one triggerer", "DateTimeTrigger (Airflow's floor)", "smoke" if smoke else "full"
    )
    summary.rows = [
        Row("added triggerer RSS (MB)", veo["rss_mb"], floor["rss_mb"], "<= 1.2x"),
        Row("added triggerer CPU (s per min)", veo["cpu_s_per_min"], floor["cpu_s_per_min"], "<= 1.2x"),
        Row("triggerer CPU incl. idle (s per min)", veo["cpu_total_s_per_min"], floor["cpu_total_s_per_min"]),
        Row("status requests per job per min", veo["polls_per_job_min"], None, "<= 0.1"),
        Row("added RSS per wait (KB)", veo["rss_mb"] * 1000 / n, floor["rss_mb"] * 1000 / n),
        Row("added CPU per wait (ms per min)", veo["cpu_s_per_min"] * 1000 / n, floor["cpu_s_per_min"] * 1000 / n),
    ]
    for row in summary.rows[:2]:
        row.met = row.ratio is not None and row.ratio <= 1.2
    summary.rows[3].met = veo["polls_per_job_min"] <= 0.1
    summary.notes = {
        "idle triggerer RSS (MB) floor/veo": f"{floor['idle_rss_mb']:.0f}/{veo['idle_rss_mb']:.0f}",
        "window": f"{size['ticks']} poll ticks once all {n} triggers ran, past their first check",
        "status requests of the first checks": veo["first_polls"],
    }
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--waits", type=int, help="waits per side (default 1,000; 5 with --smoke)")
    args = p.parse_args(argv)
    with bench_airflow(args.waits or (SMOKE if args.smoke else FULL)["n"]) as b:
        return run(b, args.smoke, args.waits).print()


if __name__ == "__main__":
    main()
