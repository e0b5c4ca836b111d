"""Where a Veo task runs and waits: in-process (metadata database at hand) or not; triggerer or worker.

Under ``airflow dags test`` / ``airflow tasks test`` the task runs in-process, with no api-server
in between: there is no executor event to race, and the metadata database is reachable directly.
"""

from __future__ import annotations

__all__ = ["default_deferrable", "in_process"]


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
