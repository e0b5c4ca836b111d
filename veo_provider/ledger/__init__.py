"""The submission ledger: what one task instance has paid for, kept in Airflow's task state store
(Airflow 3.3+), or in Airflow Variables before 3.3 (``variables``).

Two sides of the same stored values: ``worker`` is the task's own view (``context["task_state_store"]``,
through the Execution API); ``database`` is the api-server's view of any task instance and its
stored state, straight from the metadata database (the callback receiver and the spending cap).
The worker-side names are re-exported here; import ``veo_provider.ledger.database`` explicitly.
"""

from __future__ import annotations

from veo_provider.ledger.keys import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.ledger.worker import Ledger, LedgerEntry, VariableStore, fingerprint, new_submission_key

__all__ = [
    "LEDGER_KEY",
    "STORED_CALLBACK_KEY",
    "Ledger",
    "LedgerEntry",
    "VariableStore",
    "fingerprint",
    "new_submission_key",
]
