"""How a wait ends, for VeoOperator and VeoSensor: its deadline, a timeout's error, a poll event's outcome.

Airflow 3.3 does not apply ``execution_timeout`` to deferrals (apache/airflow#69678), so the
deadline handed to the trigger carries it, and reaching it raises Airflow's own task timeout.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowTaskTimeout

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from veo_provider.models import TaskStatus, VeoEvent

__all__ = ["CALLBACK_GRACE", "poll_outcome", "timeout_error", "try_start", "wait_deadline"]

#: Callback URLs stay valid this long after the task's own timeout (late callbacks still count).
CALLBACK_GRACE = 24 * 3600


def poll_outcome(ev: VeoEvent) -> TaskStatus | None:
    """The finished job of a trigger (poll) event; ``None`` on timeout; raises on failure or error."""
    if ev.status == "timeout":
        return None
    if ev.status == "error":
        raise AirflowFailException(f"Waiting for Veo job {ev.veo_task_id} failed: {ev.error_message}")
    status = ev.job_status()
    if not status.finished(ev.veo_task_id):  # a poll event is only sent for a finished job
        raise AirflowFailException(f"Veo job {ev.veo_task_id}: the trigger sent {ev.status!r} for a running job")
    return status


def try_start(context: Context) -> float | None:
    """When this try started (kept across deferrals), as UNIX time."""
    start = getattr(context.get("ti"), "start_date", None)
    return start.timestamp() if isinstance(start, datetime) else None


def wait_deadline(
    context: Context, now: float, timeout: float, execution_timeout: timedelta | None, deadline: float | None = None
) -> float:
    """``timeout`` from now (or a running wait's ``deadline``), capped by the try's ``execution_timeout``."""
    end = now + timeout if deadline is None else deadline
    start = try_start(context)
    if execution_timeout is not None and start is not None:
        end = min(end, start + execution_timeout.total_seconds())
    return end


def timeout_error(
    context: Context, ev: VeoEvent, timeout: float, execution_timeout: timedelta | None, now: float | None = None
) -> BaseException:
    """Why a wait timed out: Airflow's task timeout when ``execution_timeout`` ended it, else ``timeout``.

    Both are retryable; a retry resumes the same job (or the same lost submission's callback).
    """
    start = try_start(context)
    end = ev.deadline if ev.deadline is not None else (time.time() if now is None else now)
    if execution_timeout is not None and start is not None and start + execution_timeout.total_seconds() <= end + 1:
        what = ev.veo_task_id or f"(submission {ev.submission_key})"
        return AirflowTaskTimeout(
            f"Veo job {what} did not finish within execution_timeout={execution_timeout}. A retry resumes "
            "waiting on the same job; it does not pay again."
        )
    if ev.veo_task_id is None:
        from veo_provider.exceptions import HOW_TO_RESOLVE  # not at DAG-parse time: the operator imports this module

        return AirflowException(
            f"No callback came within timeout={timeout:.0f}s for the submission whose answer was lost "
            f"(submission key {ev.submission_key}). It may not have created a job. {HOW_TO_RESOLVE}"
        )
    return AirflowException(
        f"Veo job {ev.veo_task_id} did not finish within timeout={timeout:.0f}s "
        f"(last seen: {ev.last_state or 'unknown'}). A retry of this task resumes "
        "waiting on the same job; it does not pay again."
    )
