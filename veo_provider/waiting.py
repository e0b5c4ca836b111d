"""How a Veo wait ends, shared by VeoOperator and VeoSensor: the one reading of a job's state,
the wait's deadline (``timeout`` capped by ``execution_timeout``), and the wait run in a worker.

Airflow 3.3 does not apply ``execution_timeout`` to deferrals (apache/airflow#69678), so the
deadline handed to the trigger carries it, and reaching it raises Airflow's own task timeout.
"""

from __future__ import annotations

import asyncio
import math
import time
import warnings
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout

from veo_provider.models import TaskState, TaskStatus, VeoEvent

if TYPE_CHECKING:
    from airflow.sdk import Context

    from veo_provider.triggers.veo import VeoTrigger

__all__ = [
    "CALLBACK_FIRST_CHECK",
    "CALLBACK_GRACE",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_DELAY",
    "RESUME_HOLD",
    "check_wait_arguments",
    "finished",
    "first_check_at",
    "in_process",
    "poll_outcome",
    "run_here",
    "timeout_error",
    "try_start",
    "wait_deadline",
]

#: Retries are free here (the ledger resumes the same job, never pays again) and they are the
#: cover for Airflow's resume race (apache/airflow#66374, #67287, #72716), so Veo tasks retry
#: unless the task or ``default_args`` say otherwise (or ``[core] default_task_retries`` asks more).
DEFAULT_RETRIES = max(2, conf.getint("core", "default_task_retries", fallback=0))
DEFAULT_RETRY_DELAY = timedelta(seconds=30)

WAIT_MODES = ("auto", "poll", "callback")
#: A year: longer waits are a typo, and timedelta/defer() overflow on huge ones.
MAX_SECONDS = 366 * 24 * 3600
ON_UNCERTAIN = ("fail", "resubmit")
#: Callback URLs stay valid this long after the task's own timeout (late deliveries still count).
CALLBACK_GRACE = 24 * 3600
#: Seconds after a deferral before anything may resume the task. Airflow 3.3 fails a task resumed
#: before the scheduler has processed the executor event of its deferral exit ("state mismatch",
#: apache/airflow#66374, #67287, #72716), and under load that event came up to 7 s late (fault
#: campaign, docs/reliability.md). Veo jobs take minutes, so the hold costs nothing real.
RESUME_HOLD = 15.0
#: In callback mode, seconds after deferral of the one early check (then only the safety net).
CALLBACK_FIRST_CHECK = RESUME_HOLD


def in_process() -> bool:
    """True under ``airflow dags test`` / ``tasks test``: the task runs with the metadata DB at hand."""
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:  # pragma: no cover - older task SDKs
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


def first_check_at(now: float, delay: float, *, deferring: bool) -> float:
    """When a wait's first check comes: never sooner than ``RESUME_HOLD`` after a deferral (no
    executor event to race under ``airflow dags test``, nor when the wait runs in the worker)."""
    hold = RESUME_HOLD if deferring and not in_process() else 0.0
    return now + max(delay, hold)


def check_wait_arguments(
    *,
    wait_mode: str,
    on_uncertain_submission: str,
    confirm_callback: bool = True,
    first_poll_delay: float = 0.0,
    **seconds: float,
) -> None:
    """Refuse a wait that cannot work, at DAG-parse time (the message names the argument and the fix)."""
    if not confirm_callback:
        warnings.warn(
            "VeoOperator(confirm_callback=False) is ignored: callbacks only wake the task, which then "
            "reads the job's state from the API",
            DeprecationWarning,
            stacklevel=3,
        )
    if wait_mode not in WAIT_MODES:
        raise ValueError(f"wait_mode {wait_mode!r} is unknown: use one of {', '.join(WAIT_MODES)}")
    if on_uncertain_submission not in ON_UNCERTAIN:
        raise ValueError(f"on_uncertain_submission {on_uncertain_submission!r} is unknown: use 'fail' or 'resubmit'")
    for name, value in {**seconds, "first_poll_delay": first_poll_delay}.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        low_ok = ok and (value >= 0 if name == "first_poll_delay" else value > 0)
        if not low_ok or value > MAX_SECONDS:
            raise ValueError(f"{name} must be a positive number of seconds up to a year (got {value!r})")


def finished(status: TaskStatus, veo_task_id: str | None) -> TaskStatus | None:
    """The one state mapping: the status if the job succeeded, ``None`` if it still runs; a failed job raises."""
    if status.state is TaskState.FAILED:
        from veo_provider.exceptions import VeoJobFailedError

        raise VeoJobFailedError.of(
            status.veo_task_id or veo_task_id, status.error_code, status.error_message, status.trace_id
        )
    return status if status.state is TaskState.SUCCEEDED else None


def poll_outcome(ev: VeoEvent) -> TaskStatus | None:
    """The finished job of a trigger (poll) event; ``None`` on timeout; raises on failure or error."""
    if ev.status == "timeout":
        return None
    if ev.status == "error":
        raise AirflowFailException(f"Waiting for Veo job {ev.veo_task_id} failed: {ev.error_message}")
    status = finished(ev.job_status(), ev.veo_task_id)
    if status is None:  # a poll event is only sent for a finished job
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
    from veo_provider.exceptions import HOW_TO_RESOLVE

    start = try_start(context)
    end = ev.deadline if ev.deadline is not None else (time.time() if now is None else now)
    if execution_timeout is not None and start is not None and start + execution_timeout.total_seconds() <= end + 1:
        what = ev.veo_task_id or f"(submission {ev.submission_key})"
        return AirflowTaskTimeout(
            f"Veo job {what} did not finish within execution_timeout={execution_timeout}. A retry resumes "
            "waiting on the same job; it does not pay again."
        )
    if ev.veo_task_id is None:
        return AirflowException(
            f"No callback came within timeout={timeout:.0f}s for the submission whose answer was lost "
            f"(submission key {ev.submission_key}). It may not have created a job. {HOW_TO_RESOLVE}"
        )
    return AirflowException(
        f"Veo job {ev.veo_task_id} did not finish within timeout={timeout:.0f}s "
        f"(last seen: {ev.last_state or 'unknown'}). A retry of this task resumes "
        "waiting on the same job; it does not pay again."
    )


def run_here(trigger: VeoTrigger) -> dict[str, Any]:
    """Run the trigger's wait loop in this worker (``deferrable=False``), with a client scoped to it."""

    async def wait() -> dict[str, Any]:
        from veo_provider.hooks.clients import aclose_shared_async_client

        try:
            return await trigger.wait()
        finally:
            await aclose_shared_async_client()

    return asyncio.run(wait())
