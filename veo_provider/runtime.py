"""Where a Veo task runs and waits: in-process (metadata database at hand) or not; triggerer or worker;
which try a trigger event answers.

Under ``airflow dags test`` / ``airflow tasks test`` the task runs in-process, with no api-server
in between: there is no executor event to race, and the metadata database is reachable directly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_deferrable", "event_of_an_earlier_try", "in_process", "try_number"]


def in_process() -> bool:
    """True under ``airflow dags test`` / ``tasks test``: the task runs with the metadata DB at hand."""
    from veo_provider.compat import in_process_comms

    return in_process_comms()


_DEFERRABLE_ENV = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"


def default_deferrable() -> bool:
    """Whether Veo tasks wait in the triggerer when the DAG does not say: ``True`` unless the deployment
    chose ``[operators] default_deferrable`` in its environment, which then decides.

    Airflow's own default for that option is ``False``, written for operators whose deferral is an
    opt-in; a Veo wait lasts minutes, and holding a worker slot for it is never the better default.
    Only the environment counts as a choice: ``airflow db migrate`` writes every default into the
    ``airflow.cfg`` it generates, so ``default_deferrable = false`` there is what an untouched file says.
    """
    import os

    from airflow.providers.common.compat.sdk import conf

    env = _DEFERRABLE_ENV
    if any(name in os.environ for name in (env, f"{env}_CMD", f"{env}_SECRET")):
        return conf.getboolean("operators", "default_deferrable")
    return True


def try_number(context: Any) -> int | None:
    """The running try's number (None outside Airflow, e.g. a test calling ``execute()``)."""
    number = getattr(context.get("ti"), "try_number", None)
    return number if isinstance(number, int) else None


def event_of_an_earlier_try(context: Any, deferred_in_try: int | None) -> bool:
    """True when a try starts with the trigger event of an earlier try's deferral.

    Airflow 3.0 does not clear a task instance's ``next_method``/``next_kwargs`` when a try that
    resumed from a deferral fails: the retry then "resumes" with that try's event (a timeout, say)
    instead of running ``execute()``, and every retry fails the same way. Such an event says nothing
    about this try; the try starts from the top (where the ledger resumes the job already paid for).
    """
    current = try_number(context)
    return deferred_in_try is not None and current is not None and deferred_in_try != current
