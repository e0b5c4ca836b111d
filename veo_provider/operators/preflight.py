"""What VeoOperator proves before it pays: its arguments are ones it knows, and its wait can read
the connection the submission used.

A paid job whose wait cannot read the connection is a job paid for and never collected, so the
wait's own lookup runs first wherever it can be run from here (``deferrable=False``, and
``airflow dags test``, whose trigger runs in this process); a separate triggerer cannot be asked,
so a connection this worker sees only in its own environment is pointed out instead.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from veo_provider.runtime import in_process
from veo_provider.settings import did_you_mean

if TYPE_CHECKING:
    from veo_provider.hooks.veo import VeoHook

__all__ = ["check_argument_names", "check_wait_connection"]


@cache
def _parameters(cls: type) -> frozenset[str]:
    """Every keyword an ``__init__`` in the class's MRO takes (a subclass or mixin may add its own)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if init := klass.__dict__.get("__init__"):
            params = inspect.signature(init).parameters.values()
            names.update(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    return frozenset(names - {"self"})


def check_argument_names(cls: type, task_id: object, kwargs: dict[str, Any]) -> None:
    """An argument nobody takes (``promt=``) fails like Airflow's own check, naming the near miss."""
    known = _parameters(cls)
    unknown = [name for name in kwargs if name not in known and not name.startswith("_airflow")]
    if unknown:
        named = ", ".join(f"{name!r}{did_you_mean(name, known)}" for name in unknown)
        raise TypeError(f"Invalid arguments were passed to {cls.__name__} (task_id: {task_id}): {named}")


def check_wait_connection(hook: VeoHook, *, waits: bool, deferrable: bool, log: Any) -> None:
    """Before any paid call: the wait will read the same connection as this submission, or the task fails.

    :param waits: The task waits for the job (``wait_for_completion``).
    :param deferrable: The wait runs in a trigger (in this process only under ``airflow dags test``).
    """
    from veo_provider.exceptions import VeoError
    from veo_provider.hooks.veo import VeoHook

    conn_id = hook.veo_conn_id
    ours = hook.settings  # a bad extra, Base URL or token fails here, finally
    if not waits:
        return
    if deferrable and not in_process():  # a triggerer elsewhere: its lookup cannot be run from here
        if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):
            log.warning(
                "The Veo connection %r comes from this worker's environment variable AIRFLOW_CONN_%s; the "
                "triggerer reads its own environment first, then the metadata database. Define the same "
                "variable on the triggerer, or keep the connection only in the metadata database.",
                conn_id,
                conn_id.upper(),
            )
        return
    try:  # the wait's own lookup, as the trigger (or run_here) will run it
        theirs = asyncio.run(VeoHook(conn_id).aget_settings())
    except VeoError as exc:
        message = f"Stopped before any paid call: the wait cannot read its connection. {exc}"
        raise AirflowFailException(message) from None
    if (theirs.base_url, theirs.token) != (ours.base_url, ours.token):
        raise AirflowFailException(
            f"Stopped before any paid call: the wait would read the Veo connection {conn_id!r} from another source "
            f"than this task (Base URL {theirs.base_url} instead of {ours.base_url}, or another token). Define "
            "it in one place only: the metadata database, or the same AIRFLOW_CONN_ variable everywhere"
        )
