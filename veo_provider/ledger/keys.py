"""Where a task instance's ledger entry and its stored callback live in Airflow's task state store.

Renaming these breaks in-flight retries of deployed DAGs: the old keys are already stored.
"""

from __future__ import annotations

__all__ = ["LEDGER_KEY", "STORED_CALLBACK_KEY"]

#: The ledger entry (``models.records.LedgerEntry``): written by the worker only.
LEDGER_KEY = "veo_submission"
#: The stored callback (``models.records.StoredCallback``): written by the callback receiver only.
STORED_CALLBACK_KEY = "veo_callback"
