"""The worker's side of the spending cap: reserve a slot before the paid POST, hand it back after a refusal.

On a cluster the worker asks the api-server (``POST /veo/quota``) with a signed credential
(``credential.py``); under ``airflow dags test`` the task runs in-process with the metadata
database at hand, so the same count runs directly (no HTTP, no credential: nothing crosses a
process). Resuming a paid job never asks; a definite refusal by the API hands the slot back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veo_provider.exceptions import SpendingCapError, SpendingCapMisconfigured, VeoTransportError
from veo_provider.spending.rules import CapDecision, CapRequest, CapRequestRefused, refusal_message

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from veo_provider.ledger import Ledger, LedgerEntry

__all__ = ["ATTEMPTS", "release", "reserve"]

#: The count is idempotent (a key is counted once), so lost answers and 5xx are asked again.
ATTEMPTS = 3
ROUTE = "/veo/quota"
NOT_MOUNTED = (
    "The cap is counted by the airflow-provider-veo plugin in the api-server: install the provider there too, and "
    "make [core] execution_api_server_url point at that api-server. A retry asks again."
)


def _count_here(request: CapRequest) -> CapDecision:
    from veo_provider.spending.counter import CounterBusy, count

    try:
        return count(request)
    except CapRequestRefused as exc:
        raise SpendingCapError(f"The spending cap refused to count this submission ({exc.detail})") from None
    except CounterBusy as exc:
        raise SpendingCapError(f"The spending cap could not be counted ({exc}); nothing was sent.") from None


def _ask_api_server(request: CapRequest) -> CapDecision:
    from veo_provider.hooks.api_server import post_json
    from veo_provider.spending.credential import deployment_key, issue_credential

    if request.ti_id is None:
        raise SpendingCapError("The spending cap needs the task instance's id to sign its request; nothing was sent.")
    token = issue_credential(request, deployment_key())
    try:
        answer = post_json(ROUTE, {}, headers={"Authorization": f"Bearer {token}"}, attempts=ATTEMPTS)
    except VeoTransportError as exc:
        message = f"Could not check the Veo spending cap: {exc.message}; nothing was sent to the Veo API."
        raise SpendingCapError(f"{message} {NOT_MOUNTED}") from None
    detail = (answer.json or {}).get("detail")
    said = f"HTTP {answer.status}" + (f": {detail}" if detail else "")
    if answer.status == 200 and answer.json is not None:
        return CapDecision.model_validate(answer.json)
    if answer.status in (401, 403):
        raise SpendingCapMisconfigured(
            f"The api-server at {answer.url} refused this worker's spending-cap credential ({said}); nothing was "
            "sent to the Veo API. Give the workers and the api-server the same [veo] spending_cap_secret (or the "
            "same [api_auth] jwt_secret), and keep their clocks in sync (NTP)."
        )
    raise SpendingCapError(
        f"Could not check the Veo spending cap at {answer.url} ({said}); nothing was sent to the Veo API. {NOT_MOUNTED}"
    )


def _ask(request: CapRequest) -> CapDecision:
    from veo_provider.runtime import in_process

    return _count_here(request) if in_process() else _ask_api_server(request)


def reserve(context: Context, ledger: Ledger, entry: LedgerEntry) -> None:
    """Count ``entry``'s submission against its caps before it is sent; AirflowFailException if over."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    if not entry.caps:
        return
    if not ledger.durable:
        raise AirflowFailException(
            "A spending cap (daily_job_limit / max_jobs_per_dag_run) needs this task's ledger (Airflow's task "
            "state store, or its Variables before Airflow 3.3), and this task has none: run it as an Airflow "
            "task (or remove the cap)"
        )
    ti = context["ti"]
    try:
        decision = _ask(CapRequest.of("reserve", ti, entry.key))
    except SpendingCapError:
        ledger.forget()  # nothing was sent: a retry may ask again
        raise
    if not decision.granted:
        ledger.forget()
        raise AirflowFailException(refusal_message(decision, entry.conn_id or "?", ti.task_id))


def release(context: Context, ledger: Ledger, entry: LedgerEntry, log: Any) -> None:
    """The API definitely refused ``entry``: hand its reservation back (best effort; a miss over-counts)."""
    if not entry.caps or not ledger.durable:
        return
    ledger.write(entry.model_copy(update={"state": "refused"}))
    try:
        _ask(CapRequest.of("release", context["ti"], entry.key))
    except Exception as exc:
        log.warning("Could not hand back the spending-cap reservation of submission %s (%s).", entry.key, exc)
