"""The spending cap: paid submissions per connection per UTC day, and per DAG run.

A cap is only a promise if it is counted atomically across hosts, and workers cannot count that
way: the Execution API offers plain upserts (Variables, XCom, state stores), no compare-and-set.
So the count lives in the metadata database as one Airflow Variable per scope, and only the
api-server (our plugin's ``POST /veo/quota``) changes it, with the Variable row locked. The
worker proves which submission it asks for by the ledger it wrote through the Execution API:
the api-server grants only the submission key that the task instance's own ledger holds.

``airflow dags test`` has no api-server; there the task runs in-process with database access,
so the same transaction runs directly. Resuming a paid job never asks; a definite refusal by the
API hands the reservation back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from airflow.sdk import Context

    from veo_provider.ledger import Ledger, LedgerEntry

__all__ = [
    "CAP_NAMES",
    "QUOTA_PREFIX",
    "CapDecision",
    "CapRequest",
    "Scope",
    "SpendingCapError",
    "apply_to_counts",
    "caps",
    "check_limit",
    "release",
    "reserve",
    "scopes_of",
]

DAILY = "daily_job_limit"
PER_RUN = "max_jobs_per_dag_run"
CAP_NAMES = (DAILY, PER_RUN)
#: Every Variable the cap keeps starts with this (the Variables page shows today's counts).
QUOTA_PREFIX = "veo_quota:"


def caps(daily_job_limit: int | None, max_jobs_per_dag_run: int | None) -> dict[str, int] | None:
    """The caps a submission is counted against (the ledger keeps them for the api-server)."""
    found = {DAILY: daily_job_limit, PER_RUN: max_jobs_per_dag_run}
    return {name: int(limit) for name, limit in found.items() if limit} or None


def check_limit(name: str, value: Any) -> None:
    """A cap is a whole number of jobs >= 1, or None (no cap); refused at DAG-parse time."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of jobs, at least 1 (got {value!r}); use None for no cap")


class SpendingCapError(Exception):
    """The cap could not be checked (api-server unreachable, or the proof was refused): nothing was sent."""


class CapRequest(BaseModel):
    """What a worker asks the api-server: reserve (or hand back) one submission of one task instance."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["reserve", "release"]
    dag_id: str = Field(min_length=1, max_length=250)
    run_id: str = Field(min_length=1, max_length=250)
    task_id: str = Field(min_length=1, max_length=250)
    map_index: int = -1
    key: str = Field(min_length=1, max_length=64)

    @classmethod
    def of(cls, action: Literal["reserve", "release"], ti: Any, key: str) -> CapRequest:
        map_index = -1 if ti.map_index is None else int(ti.map_index)
        return cls(action=action, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=map_index, key=key)


class CapDecision(BaseModel):
    """The api-server's answer; when refused, which cap said no and how full it is."""

    granted: bool
    cap: str | None = None
    limit: int | None = None
    used: int | None = None
    scope: str | None = None


@dataclass(frozen=True)
class Scope:
    """One counter: a cap's limit and the Variable that holds the submission keys counted against it."""

    cap: str
    limit: int
    variable: str
    label: str


def scopes_of(
    caps: dict[str, int] | None, conn_id: str | None, dag_id: str, run_id: str, today: date, run_day: date
) -> list[Scope]:
    """The counters a submission is counted against, in lock order (by Variable key: no deadlocks).

    Keys start with a date so old counters can be dropped by a range delete; ``run_day`` is the
    DAG run's own date, so a run that crosses midnight keeps one counter.
    """
    out: list[Scope] = []
    caps = caps or {}
    if caps.get(DAILY):
        conn = conn_id if conn_id and len(conn_id) <= 200 else hashlib.sha256(str(conn_id).encode()).hexdigest()[:24]
        out.append(
            Scope(DAILY, int(caps[DAILY]), f"{QUOTA_PREFIX}day:{today}:{conn}", f"connection {conn_id!r} on {today}")
        )
    if caps.get(PER_RUN):
        digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:24]
        out.append(
            Scope(PER_RUN, int(caps[PER_RUN]), f"{QUOTA_PREFIX}run:{run_day}:{digest}", f"DAG run {dag_id}/{run_id}")
        )
    return sorted(out, key=lambda s: s.variable)


@dataclass
class Counted:
    """The submission keys already counted in one scope (a Variable's value)."""

    keys: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, raw: str | None) -> Counted:
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            value = {}
        keys = value.get("keys") if isinstance(value, dict) else None
        return cls([k for k in keys if isinstance(k, str)] if isinstance(keys, list) else [])

    def dump(self, scope: Scope) -> str:
        return json.dumps({"cap": scope.cap, "limit": scope.limit, "used": len(self.keys), "keys": self.keys})


def apply_to_counts(request: CapRequest, scopes: list[Scope], counts: list[Counted]) -> CapDecision:
    """Grant (idempotently: a key already counted is granted again) or refuse; updates ``counts``."""
    if request.action == "release":
        for counted in counts:
            if request.key in counted.keys:
                counted.keys.remove(request.key)
        return CapDecision(granted=True)
    for scope, counted in zip(scopes, counts, strict=True):
        if request.key not in counted.keys and len(counted.keys) >= scope.limit:
            used = len(counted.keys)
            return CapDecision(granted=False, cap=scope.cap, limit=scope.limit, used=used, scope=scope.label)
    for counted in counts:
        if request.key not in counted.keys:
            counted.keys.append(request.key)
    return CapDecision(granted=True)


def refusal_message(decision: CapDecision, conn_id: str, task: str) -> str:
    if decision.cap == DAILY:
        how = (
            f"raise (or remove) the 'daily_job_limit' extra of the Veo connection {conn_id!r}, or run again "
            "after 00:00 UTC"
        )
    else:
        how = f"raise max_jobs_per_dag_run of task {task!r} (or leave it unset), or start a new DAG run"
    return (
        f"Spending cap reached, nothing was sent to the Veo API: {decision.cap}={decision.limit} allows "
        f"{decision.limit} paid submission(s) for {decision.scope}, and {decision.used} were already made. To go "
        f"on, {how}. Jobs already paid are not affected."
    )


# ---------------------------------------------------------------------------------- worker side


def _ask(request: CapRequest) -> CapDecision:
    from veo_provider.runtime import in_process

    if in_process():
        from airflow.utils.session import create_session

        from veo_provider.callbacks.quota import apply_in_db
        from veo_provider.callbacks.signing import CallbackRejected

        try:
            with create_session(scoped=False) as session:
                return apply_in_db(session, request)
        except CallbackRejected as exc:
            raise SpendingCapError(f"The spending cap refused to count this submission ({exc.detail})") from None
    from veo_provider.hooks.quota import post_cap_request

    return CapDecision.model_validate(post_cap_request(request.model_dump()))


def reserve(context: Context, ledger: Ledger, entry: LedgerEntry) -> None:
    """Count ``entry``'s submission against its caps before it is sent; AirflowFailException if over."""
    from airflow.sdk.exceptions import AirflowFailException

    if not entry.caps:
        return
    if not ledger.durable:
        raise AirflowFailException(
            "A spending cap (daily_job_limit / max_jobs_per_dag_run) needs Airflow's task state store, and this "
            "task has none in its context: run it in Airflow 3.3+ (or remove the cap)"
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
