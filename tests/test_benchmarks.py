"""Every benchmark runs at a small size in the test suite, so a benchmark that breaks fails CI.

No timing is asserted here: the figures live in benchmarks/ (``make bench``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["benchmarks.bench_wait"])
def test_benchmark_runs_at_its_smoke_size(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ours/base" in proc.stdout
