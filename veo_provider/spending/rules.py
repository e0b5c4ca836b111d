"""The spending cap's counting rules: which counters a submission counts against, grant or refuse.

Pure functions and the two messages that cross the wire (the request and the decision); no
database, no HTTP, no Airflow. ``counter.py`` applies these rules to the metadata database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from veo_provider.spending.limits import check_limit

__all__ = [
    "CAP_NAMES",
    "COUNTER_PREFIX",
    "DAILY",
    "PER_RUN",
    "CapDecision",
    "CapRequest",
    "CapRequestRefused",
    "Counted",
    "Scope",
    "apply_to_counts",
    "caps",
    "check_limit",
    "refusal_message",
    "scopes_of",
]

DAILY = "daily_job_limit"
PER_RUN = "max_jobs_per_dag_run"
CAP_NAMES = (DAILY, PER_RUN)
#: Every Variable the cap keeps starts with this (the Variables page shows today's counts). It
#: keeps the word "quota" because deployed counters already carry it: renaming it would reset
#: every running day's count and orphan the old rows.
COUNTER_PREFIX = "veo_quota:"
#: Airflow keeps ``map_index`` in a 32-bit integer column; a larger one names no task instance.
MAX_MAP_INDEX = 2**31 - 1
#: Airflow's own limit for dag_id / run_id / task_id (``ID_LEN``).
ID_LEN = 250


def caps(daily_job_limit: int | None, max_jobs_per_dag_run: int | None) -> dict[str, int] | None:
    """The caps a submission is counted against (the ledger keeps them for the api-server)."""
    found = {DAILY: daily_job_limit, PER_RUN: max_jobs_per_dag_run}
    return {name: int(limit) for name, limit in found.items() if limit} or None


class CapRequestRefused(Exception):
    """A spending-cap request that proves nothing: answered with ``status_code``, counts nothing.

    ``reason`` is what the caller is told; ``detail`` is logged on the server only.
    """

    def __init__(self, status_code: int, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.detail = detail


class CapRequest(BaseModel):
    """Reserve (or hand back) one submission of one task instance; every field is bounded."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    action: Literal["reserve", "release"]
    dag_id: str = Field(min_length=1, max_length=ID_LEN)
    run_id: str = Field(min_length=1, max_length=ID_LEN)
    task_id: str = Field(min_length=1, max_length=ID_LEN)
    map_index: int = Field(default=-1, ge=-1, le=MAX_MAP_INDEX)
    key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    #: The task instance's id, which Airflow renews at every try: a request of one try cannot act
    #: on the next. ``None`` only where the caller has no id to give.
    ti_id: str | None = Field(default=None, min_length=1, max_length=64)

    @classmethod
    def of(cls, action: Literal["reserve", "release"], ti: Any, key: str) -> CapRequest:
        map_index = -1 if ti.map_index is None else int(ti.map_index)
        ti_id = getattr(ti, "id", None)
        return cls(
            action=action,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=map_index,
            key=key,
            ti_id=str(ti_id) if ti_id is not None else None,
        )

    def where(self) -> str:
        """Which task instance, for log lines."""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}[{self.map_index}]"


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
    """The counters a submission is counted against, in write order (by Variable key: no deadlocks).

    Keys start with a date so old counters can be dropped; ``run_day`` is the DAG run's own
    date, so a run that crosses midnight keeps one counter.
    """
    out: list[Scope] = []
    caps = caps or {}
    if caps.get(DAILY):
        conn = conn_id if conn_id and len(conn_id) <= 200 else hashlib.sha256(str(conn_id).encode()).hexdigest()[:24]
        out.append(
            Scope(DAILY, int(caps[DAILY]), f"{COUNTER_PREFIX}day:{today}:{conn}", f"connection {conn_id!r} on {today}")
        )
    if caps.get(PER_RUN):
        digest = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:24]
        out.append(
            Scope(PER_RUN, int(caps[PER_RUN]), f"{COUNTER_PREFIX}run:{run_day}:{digest}", f"DAG run {dag_id}/{run_id}")
        )
    return sorted(out, key=lambda s: s.variable)


@dataclass
class Counted:
    """The submission keys already counted in one scope (a counter Variable's value)."""

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
    """What the refused task says: which cap, how full, and how to go on."""
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
