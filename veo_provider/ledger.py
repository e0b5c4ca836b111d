"""The submission ledger: what this task instance has paid for, kept in Airflow's task state store.

The store is scoped to (dag run, task_id, map_index) and survives retries, so a retry (after a
crash, a timeout or a failed download) finds the job it already paid for instead of paying again.
The callback receiver writes deliveries under CALLBACK_KEY of the same task instance.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["CALLBACK_KEY", "LEDGER_KEY", "Ledger", "LedgerEntry", "fingerprint", "new_submission_key"]

#: Renaming these breaks in-flight retries of deployed DAGs: the old key is already stored.
LEDGER_KEY = "veo_submission"
CALLBACK_KEY = "veo_callback"


def new_submission_key() -> str:
    return secrets.token_hex(16)


def fingerprint(path: str, body: dict[str, Any]) -> str:
    """What a request asks for, without how we wait for it (callback URL, async flag)."""
    asked = {k: v for k, v in body.items() if k not in ("callback_url", "async")}
    return hashlib.sha256(json.dumps([path, asked], sort_keys=True, default=str).encode()).hexdigest()[:32]


class LedgerEntry(BaseModel):
    """``submitting`` is written before the paid POST, ``submitted`` (with the task id) right after."""

    state: Literal["submitting", "submitted"]
    key: str
    task_id: str | None = None
    trace_id: str | None = None
    endpoint: str | None = None
    #: Hash of what was asked for: a retry resumes the job only if the request is unchanged.
    fingerprint: str | None = None
    at: str = ""


class Ledger:
    """Typed access to the ledger entry of one task instance (``None`` store: no crash safety)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @property
    def durable(self) -> bool:
        return self.store is not None

    def get(self) -> LedgerEntry | None:
        raw = self.store.get(LEDGER_KEY) if self.store is not None else None
        return LedgerEntry.model_validate(raw) if raw else None

    def submitting(self, key: str, endpoint: str, fingerprint: str) -> LedgerEntry:
        return self._write(LedgerEntry(state="submitting", key=key, endpoint=endpoint, fingerprint=fingerprint))

    def submitted(self, entry: LedgerEntry, task_id: str, trace_id: str | None) -> LedgerEntry:
        return self._write(entry.model_copy(update={"state": "submitted", "task_id": task_id, "trace_id": trace_id}))

    def forget(self) -> None:
        """Nothing was created (the API refused the request): the next try may submit again."""
        if self.store is not None:
            self.store.delete(LEDGER_KEY)

    def callback(self) -> dict[str, Any] | None:
        """A callback delivery stored by the receiver for this task instance, if one came."""
        value = self.store.get(CALLBACK_KEY) if self.store is not None else None
        return value if isinstance(value, dict) else None

    def _write(self, entry: LedgerEntry) -> LedgerEntry:
        entry.at = datetime.now(timezone.utc).isoformat()
        if self.store is not None:
            self.store.set(LEDGER_KEY, entry.model_dump(mode="json"))
        return entry
