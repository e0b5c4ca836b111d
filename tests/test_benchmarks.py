"""Every benchmark runs at its smoke size in CI, so a benchmark that breaks fails CI.

No timing is asserted (the figures live in benchmarks/, ``make bench``): only that each figure
runs and prints its table and its one-line JSON summary. The standalone figures are subprocesses
of a few seconds each (figure 7, the Videos tab in a browser, under a minute: it seeds and starts an
api-server) in ``make test``'s integration tier. Figures 1-3 need a real Airflow on
PostgreSQL; they share one cluster of their own in one test of several minutes, so they run in
``make test-reliability`` and skip (like tests/e2e) when PostgreSQL is absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from veo_provider.testing.cluster import postgres_unavailable

ROOT = Path(__file__).resolve().parents[1]
STANDALONE = [
    "benchmarks.bench_parse",
    "benchmarks.bench_download",
    "benchmarks.bench_ratelimit",
    "benchmarks.bench_ui",
]
ON_AIRFLOW = [("benchmarks.bench_triggerer", 1), ("benchmarks.bench_callbacks", 2), ("benchmarks.bench_resume", 3)]


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.parametrize("module", STANDALONE)
def test_benchmark_runs_at_its_smoke_size(module: str) -> None:
    if module == "benchmarks.bench_ui":  # it drives Chromium through Playwright
        from tests.ui.browser import unavailable
        from tests.ui.gate import require

        require(unavailable())
    proc = subprocess.run(
        [sys.executable, "-m", module, "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = _summary(proc.stdout)
    assert summary["size"] == "smoke" and summary["rows"], summary


@pytest.mark.e2e
@pytest.mark.reliability
def test_airflow_benchmarks_run_at_their_smoke_size() -> None:
    """Figures 1-3 on one shared cluster, through ``python -m benchmarks``'s own code path."""
    if reason := postgres_unavailable():
        pytest.skip(f"figures 1-3 run a real Airflow on PostgreSQL: {reason}")
    code = "import json; from benchmarks.__main__ import run_on_airflow; print(json.dumps(run_on_airflow(smoke=True)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    results = _summary(proc.stdout)
    assert not results["failed"], proc.stdout[-4000:]
    assert sorted(r["figure"] for r in results["figures"]) == [n for _, n in ON_AIRFLOW]


def test_every_benchmark_module_is_run() -> None:
    """A new figure must be added to ``python -m benchmarks`` (and so to this smoke test)."""
    from benchmarks.__main__ import ON_AIRFLOW as cluster_figures
    from benchmarks.__main__ import STANDALONE as standalone_figures

    on_disk = {f"benchmarks.{p.stem}" for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert {m.__name__ for m in (*standalone_figures, *cluster_figures)} == on_disk
    assert set(STANDALONE) | {m for m, _ in ON_AIRFLOW} == on_disk
