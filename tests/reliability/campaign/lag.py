"""How late the scheduler saw each deferral's executor event: the window of Airflow's resume race.

A task that defers exits; its executor reports the try as finished, and until the scheduler has
processed that event, resuming the task lets the scheduler fail it ("state mismatch",
apache/airflow#66374, #67287, #72716). ``RESUME_HOLD`` must outlast this lag. Measured from the
cluster's own logs: the task log's "Pausing task as DEFERRED" line and the scheduler log's
"Received executor event ... for task instance TaskInstanceKey(...)" line of the same try.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

__all__ = ["deferral_lags", "describe_lags"]

_ATTEMPT = re.compile(r"run_id=([^/]+)/task_id=([^/]+)/(?:map_index=(-?\d+)/)?attempt=(\d+)\.log$")
_EVENT = re.compile(
    r"^(\S+) .*Received executor event with state \w+ for task instance TaskInstanceKey\("
    r"dag_id='[^']*', task_id='([^']*)', run_id='([^']*)', try_number=(\d+), map_index=(-?\d+)\)"
)

Key = tuple[str, str, int, int]  # run_id, task_id, map_index, try_number


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _deferrals(home: Path) -> list[tuple[Key, float]]:
    found = []
    for path in (home / "logs").rglob("attempt=*.log"):
        m = _ATTEMPT.search(path.as_posix())
        if m is None:
            continue
        key = (m.group(1), m.group(2), int(m.group(3) or -1), int(m.group(4)))
        with path.open(errors="replace") as lines:
            for line in lines:
                if "Pausing task as DEFERRED" not in line:
                    continue
                try:
                    found.append((key, _ts(json.loads(line)["timestamp"])))
                except (ValueError, KeyError, TypeError):
                    continue
    return found


def _events(scheduler_log: Path) -> dict[Key, list[float]]:
    events: dict[Key, list[float]] = {}
    if not scheduler_log.exists():
        return events
    with scheduler_log.open(errors="replace") as lines:
        for line in lines:
            m = _EVENT.match(line)
            if m is not None:
                key = (m.group(3), m.group(2), int(m.group(5)), int(m.group(4)))
                events.setdefault(key, []).append(_ts(m.group(1)))
    return events


def deferral_lags(home: Path) -> list[float]:
    """Seconds from each deferral to the scheduler's first executor event of that try after it."""
    events = _events(home / "scheduler.log")
    lags = []
    for key, at in _deferrals(home):
        later = [t for t in events.get(key, []) if t >= at]
        if later:
            lags.append(round(min(later) - at, 2))
    return sorted(lags)


def describe_lags(lags: list[float], hold: float) -> str:
    if not lags:
        return "not measured"
    p50, p90 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.9))]
    over = sum(1 for lag in lags if lag >= hold)
    return f"{p50:.1f} / {p90:.1f} / {lags[-1]:.1f} s of {len(lags)} deferrals; {over} at or over the {hold:.0f} s hold"
