"""`python -m benchmarks [--smoke]` (or `make bench`): every figure, then one table of them all.

The figures that need no Airflow run first (they time single processes and are the most
sensitive to a busy machine); figures 1-3 then share one Airflow cluster (~30 s to start).
A figure that fails is reported and the others still run; the exit code says whether any failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import (
    bench_callbacks,
    bench_download,
    bench_parse,
    bench_ratelimit,
    bench_resume,
    bench_triggerer,
    bench_ui,
)
from benchmarks._common import Summary

STANDALONE = (bench_parse, bench_download, bench_ratelimit, bench_ui)
ON_AIRFLOW = (bench_triggerer, bench_callbacks, bench_resume)


def _attempt(name: str, fn: Callable[[], Summary], out: list[dict[str, Any]], failures: list[str]) -> None:
    try:
        out.append(fn().print())
    except Exception:
        traceback.print_exc()
        failures.append(name)


def run_on_airflow(smoke: bool) -> dict[str, Any]:
    """Figures 1-3 on one shared cluster: ``{"figures": [summaries], "failed": [names]}``."""
    from benchmarks._airflow import bench_airflow, postgres_unavailable

    out: list[dict[str, Any]] = []
    failures: list[str] = []
    if reason := postgres_unavailable():
        print(f"\nFigures 1-3 skipped: they run a real Airflow on PostgreSQL: {reason}")
        return {"figures": out, "failed": ["figures 1-3 (no PostgreSQL)"]}
    n = max((m.SMOKE if smoke else m.FULL).get("n", 1) for m in ON_AIRFLOW)
    with bench_airflow(n) as b:
        for module in ON_AIRFLOW:
            _attempt(module.__name__, lambda m=module: m.run(b, smoke), out, failures)  # type: ignore[misc]
    return {"figures": out, "failed": failures}


def table(results: Sequence[dict[str, Any]]) -> str:
    """The README table: one line per measured row."""
    lines = ["| # | figure | metric | baseline | ours | ratio | target | met |", "|---|---|---|---|---|---|---|---|"]
    for fig in results:
        for r in fig["rows"]:
            met = {True: "yes", False: "**no**", None: ""}[r["met"]]
            cells = [fig["figure"], fig["name"], r["metric"], _cell(r["baseline"]), _cell(r["ours"]),
                     _cell(r["ratio"]), r["target"], met]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every figure at its tiny size (the test suite's run)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for module in STANDALONE:
        _attempt(module.__name__, lambda m=module: m.run(args.smoke), results, failures)  # type: ignore[misc]
    on_airflow = run_on_airflow(args.smoke)
    results += on_airflow["figures"]
    failures += on_airflow["failed"]
    results.sort(key=lambda r: r["figure"])
    elapsed = time.monotonic() - started
    print(f"\nAll figures ({'smoke' if args.smoke else 'full'} size) in {elapsed:.0f}s on {_machine()}\n")
    print(table(results))
    print(json.dumps({"seconds": round(elapsed, 1), "failed": failures, "figures": results}, separators=(",", ":")))
    return 1 if failures else 0


def _machine() -> str:
    import os

    from airflow import __version__ as airflow_version

    return f"{os.cpu_count()} cores, Python {platform.python_version()}, Airflow {airflow_version}"


if __name__ == "__main__":
    sys.exit(main())
