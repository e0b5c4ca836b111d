"""Figure 6: what a DAG file using VeoOperator costs the dag-processor on top of ``import airflow.sdk``.

Every parse of a DAG file pays its imports: importing the operator and building a DAG with a
100-way mapped VeoOperator must cost at most 1.15x the same DAG built with Airflow's own
BashOperator, measured in the same run (any operator pays what ``airflow.sdk`` loads lazily for
a DAG). Each sample is a fresh interpreter (nothing cached in ``sys.modules``) that times, in CPU
seconds (steadier than wall time on a busy machine), ``import airflow.sdk`` and then what the DAG
adds after it; the figure is the median of what it adds, the two kinds interleaved. The children
may write ``.pyc`` files even under ``PYTHONDONTWRITEBYTECODE``: a dag-processor reads an installed
package's bytecode, and compiling our sources at every parse would be measured otherwise.

    python -m benchmarks.bench_parse [--smoke]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import Row, Summary, arguments, median

FULL: dict[str, Any] = {"repetitions": 9}
SMOKE: dict[str, Any] = {"repetitions": 1}
TARGET_RATIO = 1.15

_TIMED = """
import time
t0 = time.process_time()
import airflow.sdk
t1 = time.process_time()
from datetime import datetime
{imp}
with airflow.sdk.DAG("parse_cost", schedule=None, start_date=datetime(2025, 1, 1)):
    {op}.partial(task_id="generate").expand({arg}=[f"video {{i}}" for i in range(100)])
t2 = time.process_time()
print("PARSE_COST", t1 - t0, t2 - t1)
"""
KINDS = {
    "BashOperator": _TIMED.format(
        imp="from airflow.providers.standard.operators.bash import BashOperator", op="BashOperator", arg="bash_command"
    ),
    "VeoOperator": _TIMED.format(
        imp="from veo_provider.operators.veo import VeoOperator", op="VeoOperator", arg="prompt"
    ),
}


def _sample(code: str) -> tuple[float, float]:
    """(ms to import airflow.sdk, ms to import the operator and build the DAG after it) in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    # Airflow may print to stdout too (e.g. on a first start in a new AIRFLOW_HOME): take our line.
    [line] = [x for x in out.stdout.splitlines() if x.startswith("PARSE_COST ")]
    sdk, added = (float(x) * 1000 for x in line.split()[1:])
    return sdk, added


def run(smoke: bool) -> Summary:
    started = time.monotonic()
    reps = (SMOKE if smoke else FULL)["repetitions"]
    for code in KINDS.values():
        _sample(code)  # warm the OS page cache and the .pyc files
    sdk: list[float] = []
    added: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(reps):
        for kind, code in KINDS.items():
            first, then = _sample(code)
            sdk.append(first)
            added[kind].append(then)
    ours, bash = median(added["VeoOperator"]), median(added["BashOperator"])
    summary = Summary(6, "DAG-parse cost (CPU)", "the same DAG with BashOperator", "smoke" if smoke else "full")
    summary.rows = [
        Row("import airflow.sdk (ms)", median(sdk)),
        Row("BashOperator + 100-way mapped DAG, added (ms)", bash),
        Row(
            "VeoOperator + 100-way mapped DAG, added (ms)",
            ours,
            bash,
            f"<= {TARGET_RATIO}x",
            ours <= TARGET_RATIO * bash,
        ),
    ]
    summary.notes = {f"{kind} added (ms)": [round(x) for x in added[kind]] for kind in KINDS}
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return run(arguments(__doc__, argv).smoke).print()


if __name__ == "__main__":
    main()
