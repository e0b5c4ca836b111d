"""What a failed Veo job leaves besides the task's error: the API's code and reason on its ledger entry.

The task log has the error; the Videos tab (``veo_provider.ui``) reads the ledger entry from the
task state store, so a failed job's card says why it failed without opening the log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from veo_provider.models import TaskStatus

__all__ = ["record_failure"]

log = logging.getLogger(__name__)


def record_failure(context: Context, status: TaskStatus) -> None:
    """Keep ``status``'s code and reason on the task's ledger entry when it says the job failed.

    Only a status read from the API (a poll, or the read a callback triggers) comes here, never a
    callback's own body. Best effort: the task fails with the API's reason whatever happens here.
    """
    from veo_provider.ledger import Ledger
    from veo_provider.models import TaskState

    if status.state is not TaskState.FAILED:
        return
    ledger = Ledger.of(context)
    try:
        entry = ledger.get()
        if entry is None or status.veo_task_id not in (None, entry.veo_task_id):
            return  # no ledger (no task state store), or another job's status
        ledger.write(entry.failed(status.error_code, status.error_message))
    except Exception:  # the store is unreachable: the task's own error still says why
        log.warning("Could not keep the failure of Veo job %s on its ledger entry.", status.veo_task_id, exc_info=True)
