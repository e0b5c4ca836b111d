"""VeoOperator's wait arguments, checked at DAG-parse time: a wait that cannot work is refused
before any run, with a message that names the argument and the fix."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_SECONDS", "ON_UNCERTAIN", "WAIT_MODES", "check_wait_arguments", "resolve_wait_mode"]

WAIT_MODES = ("auto", "poll", "callback")
ON_UNCERTAIN = ("fail", "resubmit")
#: A year: longer waits are a typo, and timedelta/defer() overflow on huge ones.
MAX_SECONDS = 366 * 24 * 3600


def check_wait_arguments(
    *, wait_mode: str, on_uncertain_submission: str, first_poll_delay: float = 0.0, **seconds: float
) -> None:
    """Refuse a wait that cannot work (the message names the argument and the fix)."""
    if wait_mode not in WAIT_MODES:
        raise ValueError(f"wait_mode {wait_mode!r} is unknown: use one of {', '.join(WAIT_MODES)}")
    if on_uncertain_submission not in ON_UNCERTAIN:
        raise ValueError(f"on_uncertain_submission {on_uncertain_submission!r} is unknown: use 'fail' or 'resubmit'")
    for name, value in {**seconds, "first_poll_delay": first_poll_delay}.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        low_ok = ok and (value >= 0 if name == "first_poll_delay" else value > 0)
        if not low_ok or value > MAX_SECONDS:
            raise ValueError(f"{name} must be a positive number of seconds up to a year (got {value!r})")


def resolve_wait_mode(wait_mode: str, settings: Any, conn_id: str) -> str:
    """``poll`` or ``callback`` for this connection; a callback mode that cannot work fails before any paid call."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    ready = bool(settings.callback_base_url and settings.callback_secret)
    if wait_mode == "auto":
        return "callback" if ready else "poll"
    if wait_mode == "callback" and not ready:
        raise AirflowFailException(
            f"wait_mode='callback' needs 'callback_base_url' and 'callback_secret' in the extras of the Veo "
            f"connection {conn_id!r} (see docs/callbacks.md), or use wait_mode='poll'"
        )
    return wait_mode
