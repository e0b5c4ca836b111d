"""Finding and killing a task's processes on this machine, by what Airflow 3.3 writes in their titles.

The task runner (the process that runs ``execute``) sets its title to ``airflow worker -- <ti.id>``
(``task_runner.py``); its parent is the supervisor: with the LocalExecutor a LocalExecutor worker
process (``airflow worker -- LocalExecutor: <task>``), with Celery a prefork child (``airflow task
supervisor: ...``). Both are found by scanning ``/proc``, which works for any executor on one host.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["kill_task", "runner_pids"]

RUNNER_PREFIX = b"airflow worker -- "
SUPERVISOR_PREFIXES = (b"airflow worker -- LocalExecutor", b"airflow supervisor:", b"airflow task supervisor:")


def _cmdline(pid: int | str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
    except OSError:
        return b""


def runner_pids() -> dict[str, int]:
    """``{ti.id: pid}`` of every task runner process on this machine."""
    found: dict[str, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        title = _cmdline(name)
        if title.startswith(RUNNER_PREFIX) and not title.startswith(SUPERVISOR_PREFIXES[0]):
            ti_id = title[len(RUNNER_PREFIX) :].split(b" ", 1)[0].decode(errors="replace")
            found[ti_id] = int(name)
    return found


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_task(pid: int, scope: str = "runner") -> list[int]:
    """SIGKILL the task runner ``pid`` (``scope="worker"``: its supervisor too); the pids killed."""
    killed: list[int] = []
    targets = [pid]
    parent = _parent(pid) if scope == "worker" else None
    if parent is not None and _cmdline(parent).startswith(SUPERVISOR_PREFIXES) and b"<idle>" not in _cmdline(parent):
        targets.insert(0, parent)  # the supervisor first, so that it cannot report the runner's death
    for target in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
            killed.append(target)
    return killed
