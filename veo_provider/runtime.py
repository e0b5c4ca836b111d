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


_DEFERRABLE = ("operators", "default_deferrable")


def default_deferrable() -> bool:
    """Whether Veo tasks wait in the triggerer when the DAG does not say: ``True`` unless the deployment
    set ``[operators] default_deferrable`` (in its environment or airflow.cfg), which then decides.

    Airflow's own default for that option is ``False``, written for operators whose deferral is an
    opt-in; a Veo wait lasts minutes, and holding a worker slot for it is never the better default.
    So only a value the deployment chose changes ours, read the way every Airflow provider reads it.
    """
    import configparser
    import os

    from airflow.providers.common.compat.sdk import conf

    section, option = _DEFERRABLE
    env = f"AIRFLOW__{section.upper()}__{option.upper()}"
    names = (option, f"{option}_cmd", f"{option}_secret")
    chosen = any(name.upper() in os.environ for name in (env, f"{env}_CMD", f"{env}_SECRET")) or any(
        configparser.ConfigParser.has_option(conf, section, name) for name in names
    )
    return conf.getboolean(section, option) if chosen else True
