"""Airflow's resume race, and how every Veo wait covers it: a hold, then retries.

Airflow 3.3 fails a task resumed before the scheduler has processed the executor event of its
deferral exit ("state mismatch", apache/airflow#66374, #67287, #72716). So nothing resumes a
task sooner than ``RESUME_HOLD`` after it deferred (the trigger's first check, the callback
receiver), and Veo tasks retry by default: a retry resumes the same job and pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf

from veo_provider.runtime import in_process

__all__ = [
    "CALLBACK_FIRST_CHECK",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_DELAY",
    "RESUME_HOLD",
    "first_check_at",
    "with_default_retries",
]

#: Retries are free here (the ledger resumes the same job, never pays again) and they are the
#: cover for the resume race, so Veo tasks retry unless the task or ``default_args`` say
#: otherwise (or ``[core] default_task_retries`` asks more).
DEFAULT_RETRIES = max(2, conf.getint("core", "default_task_retries", fallback=0))
DEFAULT_RETRY_DELAY = timedelta(seconds=30)
#: Seconds after a deferral before anything may resume the task. Under load the executor event
#: of the deferral exit came up to 7 s late (fault campaign, docs/reliability.md). Veo jobs take
#: minutes, so the hold costs nothing real.
RESUME_HOLD = 15.0
#: In callback mode, seconds after deferral of the one early check (then only the safety net).
CALLBACK_FIRST_CHECK = RESUME_HOLD


def first_check_at(now: float, delay: float, *, deferring: bool) -> float:
    """When a wait's first check comes: never sooner than ``RESUME_HOLD`` after a deferral (no
    executor event to race under ``airflow dags test``, nor when the wait runs in the worker)."""
    hold = RESUME_HOLD if deferring and not in_process() else 0.0
    return now + max(delay, hold)


def with_default_retries(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus our ``retries`` / ``retry_delay`` where neither they nor the ``default_args``
    in force (the DAG's, the task group's, the call's own) set them: those always win."""
    from veo_provider.compat import dag_default_args

    chosen = dag_default_args(kwargs.get("dag"), kwargs.get("task_group"), kwargs.get("default_args"))
    added = {name: default for name, default in (("retries", DEFAULT_RETRIES), ("retry_delay", DEFAULT_RETRY_DELAY))}
    return {**{k: v for k, v in added.items() if k not in kwargs and k not in chosen}, **kwargs}
