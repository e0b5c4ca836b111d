"""The worker's side of the ledger: this task instance's entry in its own task state store.

The store is scoped to (dag run, task_id, map_index) and survives retries, so a retry (after a
crash, a timeout or a failed download) finds the job it already paid for instead of paying again.
The callback receiver writes the stored callback (a wake-up) under STORED_CALLBACK_KEY of the same
task instance; only the worker writes the ledger entry, after an authenticated read of the API.

``Ledger.of(context)`` picks the store: ``context["task_state_store"]`` on Airflow 3.3+, else one
Airflow Variable per key (``VariableStore``, see ``ledger/variables.py``), through the Execution API.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from typing import Any

from veo_provider import compat
from veo_provider.ledger import variables
from veo_provider.ledger.keys import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.models.records import LedgerEntry, StoredCallback

__all__ = ["Ledger", "LedgerEntry", "VariableStore", "fingerprint", "new_submission_key"]


def new_submission_key() -> str:
    return secrets.token_hex(16)


def fingerprint(path: str, body: dict[str, Any]) -> str:
    """What a request asks for, without how we wait for it (callback URL, async flag)."""
    asked = {k: v for k, v in body.items() if k not in ("callback_url", "async")}
    return hashlib.sha256(json.dumps([path, asked], sort_keys=True, default=str).encode()).hexdigest()[:32]


class VariableStore:
    """The task state store's ``get``/``set``/``delete`` on Airflow Variables, for one task instance (< 3.3).

    ``absent``: keys known to have no Variable, so that reading them asks nothing. Airflow 3.0 and 3.1
    log every read of a missing Variable at error level (``Variable not found``) in the task's log; a
    first try's ``execute()`` knows its ledger is empty, and ``submitting`` creates the stored-callback
    Variable before anything is sent, so a job's own tries read only Variables that exist.
    """

    def __init__(self, ti: Any, absent: tuple[str, ...] = ()) -> None:
        self.ti = ti
        self.absent = set(absent)

    def get(self, key: str) -> dict[str, Any] | None:
        from airflow.providers.common.compat.sdk import Variable

        if key in self.absent:
            return None
        return variables.unwrap(self.ti, key, Variable.get(variables.variable_key(self.ti, key), default=None))

    def set(self, key: str, value: dict[str, Any], *, check: bool = True) -> None:
        from airflow.providers.common.compat.sdk import Variable

        envelope = variables.wrap(self.ti, key, value)
        name = variables.variable_key(self.ti, key)
        Variable.set(name, envelope, description=variables.description(self.ti, key), serialize_json=True)
        self.absent.discard(key)
        # Variable.set logs a failed write and returns: read it back, or nothing proves the payment.
        if check and self.get(key) != json.loads(json.dumps(value)):
            raise RuntimeError(f"Could not write the Veo ledger Variable {name} through Airflow's Execution API")

    def delete(self, key: str) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(variables.variable_key(self.ti, key))
        self.absent.add(key)


class Ledger:
    """Typed access to the ledger entry of one task instance (``None`` store: no crash safety)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @classmethod
    def of(cls, context: Any, *, starting: bool = False) -> Ledger:
        """The ledger of the task running with ``context``: its task state store, else (before Airflow
        3.3) its Variables; none when the context names no task instance (plain unit calls).

        ``starting``: called at the top of ``execute()``. On the first try of a task instance nothing
        can be stored yet, so the fallback does not read (what a retry or a cleared task reads exists).
        """
        store = context.get("task_state_store")
        ti = context.get("ti")
        if store is None and not compat.HAS_TASK_STATE_STORE and getattr(ti, "run_id", None) is not None:
            first_try = starting and getattr(ti, "try_number", None) == 1
            store = VariableStore(ti, absent=(LEDGER_KEY, STORED_CALLBACK_KEY) if first_try else ())
        return cls(store)

    @property
    def durable(self) -> bool:
        return self.store is not None

    def get(self) -> LedgerEntry | None:
        raw = self.store.get(LEDGER_KEY) if self.store is not None else None
        return LedgerEntry.model_validate(raw) if raw else None

    def submitting(
        self,
        key: str,
        endpoint: str,
        fingerprint: str,
        conn_id: str,
        sent: dict[str, Any] | None = None,
        caps: dict[str, int] | None = None,
    ) -> LedgerEntry:
        entry = LedgerEntry(
            state="submitting",
            key=key,
            endpoint=endpoint,
            fingerprint=fingerprint,
            conn_id=conn_id,
            sent=sent,
            caps=caps or None,
        )
        if isinstance(self.store, VariableStore):
            # The receiver fills it in; existing from now on, the worker's reads of it never miss.
            self.store.set(STORED_CALLBACK_KEY, {}, check=False)
        return self.write(entry)

    def forget(self) -> None:
        """Nothing was created (refused, or never reached the API): the next try may submit again."""
        if isinstance(self.store, VariableStore):
            self.store.set(LEDGER_KEY, {}, check=False)  # emptied, not deleted: the next try reads it
        elif self.store is not None:
            self.store.delete(LEDGER_KEY)

    def job_done(self) -> None:
        """The task has its result: the Variables of the fallback go (the task state store keeps its
        rows until the DAG run goes, as Airflow 3.3 keeps them)."""
        if isinstance(self.store, VariableStore):
            for key in (LEDGER_KEY, STORED_CALLBACK_KEY):
                self.store.delete(key)

    def stored_callback(self, entry: LedgerEntry) -> StoredCallback | None:
        """The stored callback the receiver kept for ``entry``'s submission, if one came."""
        raw = self.store.get(STORED_CALLBACK_KEY) if self.store is not None else None
        stored = StoredCallback.read(raw)
        return stored if stored is not None and stored.key == entry.key else None

    def write(self, entry: LedgerEntry) -> LedgerEntry:
        entry = entry.model_copy(update={"at": datetime.now(timezone.utc).isoformat()})
        if self.store is not None:
            self.store.set(LEDGER_KEY, entry.dump())
        return entry
