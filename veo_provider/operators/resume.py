"""Which job a try resumes: the one an earlier try paid for, or the job a lost submission created.

Only an authenticated read of the API decides: a 404 follows ``on_uncertain_submission``, and
the job a callback names is adopted only when the job's own record carries this submission's key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowTaskTimeout

from veo_provider.exceptions import HOW_TO_RESOLVE, VeoNotFoundError
from veo_provider.models import LedgerEntry, TaskState, TaskStatus, decide_state

if TYPE_CHECKING:
    from veo_provider.hooks.veo import VeoHook
    from veo_provider.ledger import Ledger

__all__ = ["RECORD_PATIENCE", "job_named_by_callback", "record_paid_job", "status_of_paid_job"]

log = logging.getLogger(__name__)

#: Seconds a try keeps trying to record the job it has just paid for (an api-server restart takes ~1 min).
RECORD_PATIENCE = 180.0


def record_paid_job(
    ledger: Ledger,
    entry: LedgerEntry,
    *,
    patience: float = RECORD_PATIENCE,
    sleep: Callable[[float], None] | None = None,
) -> LedgerEntry:
    """Write the ledger entry of a job just paid for, retrying while the task state store is unreachable.

    Until it is written the job id exists only in this process: a try that dies here leaves the
    ledger at ``submitting``, and later tries can learn the job only from its callback (none in poll
    mode). Airflow's own retries of an Execution API call last seconds; an api-server restart, a minute.
    """
    deadline = time.monotonic() + patience
    delay = 1.0
    while True:
        try:
            return ledger.write(entry)
        except AirflowTaskTimeout:
            raise
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "Could not record Veo job %s (submission key %s) in the task state store: %s; retrying in %.0fs.",
                entry.veo_task_id,
                entry.key,
                exc,
                delay,
            )
            (sleep or time.sleep)(delay)
            delay = min(delay * 2, 15.0)


def status_of_paid_job(hook: VeoHook, entry: LedgerEntry, on_uncertain_submission: str) -> TaskStatus | None:
    """The status of the job an earlier try paid for; ``None`` when a new job should be submitted."""
    assert entry.veo_task_id is not None
    try:
        status = decide_state(hook.get_task(entry.veo_task_id))
    except VeoNotFoundError:
        if on_uncertain_submission == "fail":
            raise AirflowFailException(
                f"The Veo job {entry.veo_task_id} that an earlier try of this task paid for (submission key "
                f"{entry.key}) is unknown to the API (404). It was not resubmitted, to avoid paying twice. "
                f"{HOW_TO_RESOLVE}"
            ) from None
        log.warning(
            "The API does not know Veo job %s from an earlier try (404); resubmitting as "
            "on_uncertain_submission='resubmit' asks.",
            entry.veo_task_id,
        )
        return None
    if status.state is TaskState.FAILED:
        log.warning(
            "The job this task paid for earlier (%s) failed at the API (%s: %s); submitting a new one.",
            entry.veo_task_id,
            status.error_code,
            status.error_message,
        )
        return None
    return status


def job_named_by_callback(
    hook: VeoHook, ledger: Ledger, entry: LedgerEntry, veo_task_id: str | None
) -> tuple[LedgerEntry, TaskStatus] | None:
    """Adopt the job a callback names for a lost submission, if the API shows it is ours."""
    if not veo_task_id:
        return None
    try:
        record = hook.get_task(veo_task_id)
    except VeoNotFoundError:
        record = None
    reconciled = entry.reconcile(record) if record is not None else None
    if record is None or reconciled is None:
        log.warning(
            "A callback named Veo job %s for the lost submission %s, but the API does not show that job as "
            "created by this submission; ignoring the callback.",
            veo_task_id,
            entry.key,
        )
        return None
    log.info("The lost submission %s created Veo job %s (confirmed by the API).", entry.key, veo_task_id)
    return ledger.write(reconciled), decide_state(record)
