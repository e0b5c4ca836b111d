"""What every figure shares: its command line, percentiles, process usage, and the printed/JSON summary."""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

#: The emulator's default token (the emulator and every benchmark connection use it).
TOKEN = "test-token"

__all__ = [
    "TOKEN",
    "Row",
    "Summary",
    "Usage",
    "arguments",
    "child_json",
    "median",
    "parser",
    "percentile",
    "rss_peak_sampler",
    "usage",
]


def child_json(module: str, args: Sequence[str], what: str, *, timeout: float = 300, **run: Any) -> dict[str, Any]:
    """Run ``python -m module args`` in its own process (so its RSS and CPU are its own) and
    return the JSON of its last stdout line; a failure raises with the child's stderr."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, **run)
    if out.returncode:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parser(doc: str | None) -> argparse.ArgumentParser:
    """Every figure's command line (``--smoke``); a figure may add its own options."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a tiny size, run by the test suite (no timing)")
    return p


def arguments(doc: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser(doc).parse_args(argv)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass
class Usage:
    """RSS (MB) and CPU seconds of a set of processes at one moment."""

    rss_mb: float
    cpu_s: float


def usage(procs: Iterable[psutil.Process]) -> Usage:
    rss = cpu = 0.0
    for proc in procs:
        try:
            rss += proc.memory_info().rss / 1e6
            times = proc.cpu_times()
            cpu += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return Usage(rss, cpu)


class rss_peak_sampler:
    """Samples this process's RSS every 20 ms in a thread; ``.peak_mb`` after the block.

    ``ru_maxrss`` cannot be used: it includes whatever peak the imports reached before the measurement.
    """

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now(self) -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._now())
            time.sleep(0.02)

    def __enter__(self) -> rss_peak_sampler:
        self.start_mb = self._now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._now())


@dataclass
class Row:
    """One line of a figure: our value, the baseline measured in the same run, and the target."""

    metric: str
    ours: float
    baseline: float | None = None
    target: str = ""
    #: Whether the target was met; ``None`` when the row has no target (context only).
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or math.isnan(self.baseline) or self.baseline <= 1e-9:
            return None
        return self.ours / self.baseline


@dataclass
class Summary:
    """A figure's result: printed as a table, then as one JSON line (the last line of its output)."""

    figure: int
    name: str
    baseline: str
    size: str
    rows: list[Row] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        return all(r.met is not False for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        rows = [{**asdict(r), "ratio": _round(r.ratio)} for r in self.rows]
        for r in rows:
            r["ours"], r["baseline"] = _round(r["ours"]), _round(r["baseline"])
        return {"figure": self.figure, "name": self.name, "baseline": self.baseline, "size": self.size,
                "met": self.met, "seconds": round(self.seconds, 1), "rows": rows, "notes": self.notes}  # fmt: skip

    def print(self) -> dict[str, Any]:
        print(f"\nFigure {self.figure}: {self.name} ({self.size}; baseline: {self.baseline}; {self.seconds:.0f}s)")
        print(f"  {'metric':44}{'baseline':>11}{'ours':>11}{'ratio':>8}  target")
        for r in self.rows:
            mark = {True: "met", False: "MISSED", None: ""}[r.met]
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
            print(f"  {r.metric:44}{_fmt(r.baseline):>11}{_fmt(r.ours):>11}{ratio:>8}  {r.target} {mark}".rstrip())
        for key, value in self.notes.items():
            print(f"  {key}: {value}")
        data = self.as_dict()
        print(json.dumps(data, separators=(",", ":")))
        return data


def _round(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(x, 4)


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
