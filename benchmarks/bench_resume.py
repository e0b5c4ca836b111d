"""Figure 3: from the Veo job finishing to the downstream task running, callback mode vs poll mode.

Real VeoOperator runs end to end on LocalExecutor (submit on a worker, defer, wake up, confirm
with one read, finish), then a trivial downstream task. The clock starts when the emulator's job
finishes and stops at the downstream task instance's ``start_date``. Poll mode uses the
operator's defaults (first check 15 s after deferral, then every 15 s on the wall clock), so
it waits ~7.5 s on average; callback mode is woken by the emulator's callback through the
receiver. Several runs of each, all at once.

    python -m benchmarks.bench_resume [--smoke]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from benchmarks._airflow import BenchAirflow, bench_airflow
from benchmarks._common import Row, Summary, arguments, median

FULL: dict[str, Any] = {"runs": 4}
SMOKE: dict[str, Any] = {"runs": 1}
#: Long enough that the callback comes after RESUME_HOLD (15 s; a task deferred more recently is
#: left to its trigger's early check) and after that first check, as with real jobs.
GENERATION_SECONDS = 25.0
MODES = ("callback", "poll")


def _latencies(b: BenchAirflow, runs: dict[str, list[str]]) -> dict[str, list[float]]:
    """Seconds from each run's job finishing to its downstream task's start."""
    jobs = {job.request.get("prompt"): job for job in b.emu.jobs}
    out: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode, run_ids in runs.items():
        for run_id in run_ids:
            job = jobs[f"latency, {run_id}"]
            [(start,)] = b.sql(
                "SELECT extract(epoch FROM start_date) FROM task_instance WHERE dag_id=%s AND run_id=%s "
                "AND task_id='downstream'",
                f"bench_latency_{mode}",
                run_id,
            )
            out[mode].append(float(start) - job.finished_at)
    return out


def _finished(b: BenchAirflow, runs: dict[str, list[str]]) -> bool:
    states = {
        state
        for mode, run_ids in runs.items()
        for run_id in run_ids
        for (state,) in b.sql(
            "SELECT state FROM dag_run WHERE dag_id=%s AND run_id=%s", f"bench_latency_{mode}", run_id
        )
    }
    if "failed" in states:
        raise RuntimeError(f"a latency run failed:\n{b.cluster.log_tail('scheduler')}")
    return states == {"success"}


def run(b: BenchAirflow, smoke: bool) -> Summary:
    started = time.monotonic()
    b.emu.reset()
    b.emu.set_faults(generation_seconds=GENERATION_SECONDS)
    runs: dict[str, list[str]] = {mode: [] for mode in MODES}
    for _ in range((SMOKE if smoke else FULL)["runs"]):
        for mode in MODES:
            runs[mode].append(b.trigger(f"bench_latency_{mode}"))
            time.sleep(0.5)
    b.wait_for("the latency runs", lambda: _finished(b, runs), 300, every=1.0)
    lat = _latencies(b, runs)
    summary = Summary(3, "job finished -> downstream task running", "poll mode", "smoke" if smoke else "full")
    summary.rows = [
        Row("median (s)", median(lat["callback"]), median(lat["poll"])),
        Row("worst (s)", max(lat["callback"]), max(lat["poll"])),
    ]
    summary.notes = {f"{mode} (s)": [round(x, 1) for x in lat[mode]] for mode in MODES}
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = arguments(__doc__, argv)
    with bench_airflow(1) as b:
        return run(b, args.smoke).print()


if __name__ == "__main__":
    main()
