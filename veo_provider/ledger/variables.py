"""The ledger's fallback below Airflow 3.3: one Airflow Variable per stored value, shared by both sides.

Why Variables: they are the only store a task can write through the Execution API on 3.0-3.2 that
survives what the ledger must survive. XComs are deleted when a new try starts (a retry or a cleared
task) on every 3.x; Variables survive retries, clears, SIGKILLed workers and api-server restarts, and
the api-server reads and writes them in the same metadata-database transaction that locks the task
instance row (the callback receiver, the spending cap).

The Variable key is a hash of (dag_id, run_id, task_id, map_index, stored key): those ids may be
250 characters each and a Variable key may not, and the hash needs no escaping. The value is an
envelope naming its task instance and when it was written, so an entry is never read for another
task instance and the age sweep knows what to drop. This module is pure (stdlib only).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

__all__ = [
    "PREFIX",
    "RETENTION_DAYS",
    "Scoped",
    "description",
    "is_stale",
    "unwrap",
    "variable_key",
    "wrap",
]

#: Every fallback Variable's key starts with this (the sweep matches it literally, never as a pattern).
PREFIX = "veo_ledger:"
#: Entries not rewritten for this long are dropped: the default of Airflow 3.3's
#: ``[state_store] default_retention_days``, so both homes of the ledger forget at the same age.
RETENTION_DAYS = 30
_FORMAT = 1


class Scoped(Protocol):
    """Anything naming one task instance (a TI, a ``TaskInstanceRef``)."""

    @property
    def dag_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def map_index(self) -> int | None: ...


def _task_of(ti: Scoped) -> list[Any]:
    return [ti.dag_id, ti.run_id, ti.task_id, -1 if ti.map_index is None else int(ti.map_index)]


def variable_key(ti: Scoped, key: str) -> str:
    """The Variable holding ``key`` of ``ti``'s ledger: ``veo_ledger:<sha256 of the ids, 40 hex>``."""
    named = json.dumps([*_task_of(ti), key], separators=(",", ":"))
    return PREFIX + hashlib.sha256(named.encode()).hexdigest()[:40]


def description(ti: Scoped, key: str) -> str:
    """What the Variables page shows: whose entry it is, and that it is not to be edited."""
    dag_id, run_id, task_id, map_index = _task_of(ti)
    shown = f"{dag_id} / {run_id} / {task_id}" + (f"[{map_index}]" if map_index >= 0 else "")
    return f"airflow-provider-veo ledger ({key}) of {shown}: do not edit; deleted when the task succeeds"[:500]


def wrap(ti: Scoped, key: str, value: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The envelope stored in the Variable (as JSON)."""
    written = (now or datetime.now(timezone.utc)).isoformat()
    return {"veo_ledger": _FORMAT, "task": _task_of(ti), "key": key, "written_at": written, "value": value}


def unwrap(ti: Scoped, key: str, stored: Any) -> dict[str, Any] | None:
    """The value of an envelope for ``ti`` and ``key``; None for anything else (never another TI's entry)."""
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return None
    if not isinstance(stored, dict) or stored.get("veo_ledger") != _FORMAT:
        return None
    if stored.get("task") != _task_of(ti) or stored.get("key") != key:
        return None
    value = stored.get("value")
    return value if isinstance(value, dict) else None


def is_stale(stored: Any, now: datetime, days: int = RETENTION_DAYS) -> bool:
    """True for an envelope last written more than ``days`` ago, or one that cannot be read at all."""
    try:
        envelope = json.loads(stored) if isinstance(stored, str) else stored
        written = datetime.fromisoformat(envelope["written_at"])
    except (TypeError, ValueError, KeyError):
        return True
    if written.tzinfo is None:
        written = written.replace(tzinfo=timezone.utc)
    return now - written > timedelta(days=days)
