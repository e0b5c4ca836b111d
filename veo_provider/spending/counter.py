"""The spending cap's counter in Airflow's metadata database (api-server, or in-process under ``airflow dags test``).

Workers cannot count atomically through the Execution API (plain upserts only), so the count
lives in one Airflow Variable per scope and only this module changes it. One attempt is one
transaction: the task instance must be running (this try, by its id) and its own ledger must
hold the submission key asked for; then each counter is written by compare-and-set
(``UPDATE ... WHERE key = ? AND val = <what was read>``, or an INSERT that loses to a racing
one), which is atomic on PostgreSQL, MySQL and SQLite alike (``SELECT ... FOR UPDATE`` is not:
SQLite ignores it). A lost race rolls the attempt back and tries again, a bounded number of times.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from veo_provider.ledger.database import TaskInstanceRecord, TaskInstanceRef, create_session
from veo_provider.models.records import LedgerEntry
from veo_provider.spending.rules import (
    COUNTER_PREFIX,
    CapDecision,
    CapRequest,
    CapRequestRefused,
    Counted,
    Scope,
    apply_to_counts,
    scopes_of,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["ATTEMPTS", "RETENTION_DAYS", "CounterBusy", "TaskAndLedger", "count", "read_task_and_ledger"]

log = logging.getLogger(__name__)

#: Compare-and-set attempts before giving up (each lost race means another request was counted).
ATTEMPTS = 40
#: Counters older than this are dropped (once a day per process).
RETENTION_DAYS = 35
NOT_FOUND = "no such submission"
_cleaned_on: set[date] = set()


class CounterBusy(Exception):
    """Every attempt lost its race (or found the database locked): nothing was counted; ask again."""


class _LostRace(Exception):
    """A counter changed between its read and its write."""


class TaskAndLedger(NamedTuple):
    """One task instance as the api-server sees it, and the ledger its worker wrote."""

    state: str | None
    ti_id: str
    #: The DAG run's own date (UTC): a run's counter stays the same across midnight.
    run_day: date
    ledger: LedgerEntry | None


def read_task_and_ledger(session: Session, request: CapRequest) -> TaskAndLedger | None:
    """The task instance's state, id and run date, and its ledger entry; None if there is no such TI."""
    record = TaskInstanceRecord.find(session, TaskInstanceRef.of(request))
    if record is None:
        return None
    run_after = (record.run_after or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return TaskAndLedger(record.state, str(record.row.id), run_after.date(), record.ledger_entry())


def _proven_ledger(session: Session, request: CapRequest) -> tuple[LedgerEntry, date]:
    """The ledger that proves ``request`` (and its run's date); CapRequestRefused(404) otherwise."""
    found = read_task_and_ledger(session, request)
    wanted = "submitting" if request.action == "reserve" else "refused"
    if found is None or found.state != "running" or (request.ti_id is not None and request.ti_id != found.ti_id):
        raise CapRequestRefused(404, NOT_FOUND, detail="no such task instance running this try")
    entry = found.ledger
    if entry is None or entry.key != request.key or entry.state != wanted:
        raise CapRequestRefused(404, NOT_FOUND, detail=f"the task instance's ledger is not {wanted!r} with this key")
    return entry, found.run_day


def _read_counter(session: Session, scope: Scope) -> tuple[str | None, Counted]:
    """The counter row's stored value exactly as stored (for the compare-and-set) and its keys."""
    from airflow.models.crypto import get_fernet
    from airflow.models.variable import Variable
    from sqlalchemy import select

    row = session.execute(select(Variable._val, Variable.is_encrypted).where(Variable.key == scope.variable)).first()
    if row is None:
        return None, Counted()
    stored = row[0]
    try:
        value = get_fernet().decrypt(stored.encode()).decode() if row[1] and stored else stored
    except Exception:  # a Fernet key this process does not have: count from zero, as Airflow reads it
        value = None
    return stored, Counted.load(value)


def _write_counter(session: Session, scope: Scope, stored: str | None, counted: Counted) -> None:
    """Compare-and-set: write only if the row still holds ``stored`` (or, if none, nobody created it)."""
    from airflow.models.variable import Variable
    from sqlalchemy import update

    new = Variable(
        key=scope.variable,
        val=counted.dump(scope),  # encrypted as Airflow encrypts every Variable
        description=f"Veo spending cap {scope.cap}={scope.limit}: {scope.label} (airflow-provider-veo)",
    )
    if stored is None:
        session.add(new)
        session.flush()  # a racing INSERT makes this an IntegrityError: the attempt is retried
        return
    result: Any = session.execute(
        update(Variable)
        .where(Variable.key == scope.variable, Variable._val == stored)
        .values({Variable._val: new._val, Variable.is_encrypted: new.is_encrypted})
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise _LostRace(scope.variable)


def _count_once(session: Session, request: CapRequest, today: date) -> CapDecision:
    entry, run_day = _proven_ledger(session, request)
    scopes = scopes_of(entry.caps, entry.conn_id, request.dag_id, request.run_id, today, run_day)
    read = [_read_counter(session, scope) for scope in scopes]
    counts = [Counted(list(counted.keys)) for _, counted in read]
    decision = apply_to_counts(request, scopes, counts)
    for scope, (stored, before), after in zip(scopes, read, counts, strict=True):
        if after.keys != before.keys:
            _write_counter(session, scope, stored, after)
    return decision


def count(request: CapRequest, *, today: date | None = None) -> CapDecision:
    """Reserve or hand back ``request.key``; CapRequestRefused(404) when nothing proves the request.

    ``today`` is the day the request was made (UTC); counted against that day's counter.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    day = today or datetime.now(timezone.utc).date()
    for attempt in range(ATTEMPTS):
        try:
            with create_session() as session:
                decision = _count_once(session, request, day)
        except (_LostRace, IntegrityError, OperationalError) as exc:
            # Someone else's count won (or SQLite's lock was busy): read again and decide again.
            log.debug("Veo spending cap: attempt %s for %s lost a race (%s)", attempt + 1, request.where(), exc)
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))
            continue
        _drop_old_counters(day)
        return decision
    raise CounterBusy(f"the spending-cap counter stayed contended for {ATTEMPTS} attempts")


def _drop_old_counters(today: date) -> None:
    """Delete counters older than RETENTION_DAYS, matching the prefix literally (never with LIKE wildcards)."""
    from airflow.models.variable import Variable
    from sqlalchemy import delete, select

    if today in _cleaned_on:
        return
    cutoff = today - timedelta(days=RETENTION_DAYS)
    try:
        with create_session() as session:
            for kind in ("day", "run"):
                prefix = f"{COUNTER_PREFIX}{kind}:"
                # autoescape: "_" and "%" in the prefix are literal characters, not wildcards.
                keys = session.scalars(select(Variable.key).where(Variable.key.startswith(prefix, autoescape=True)))
                old = [key for key in keys if key.startswith(prefix) and _day_of(key[len(prefix) :]) < cutoff]
                for start in range(0, len(old), 500):
                    session.execute(
                        delete(Variable)
                        .where(Variable.key.in_(old[start : start + 500]))
                        .execution_options(synchronize_session=False)
                    )
    except Exception as exc:  # housekeeping: never fails a count
        log.warning("Could not drop old Veo spending-cap counters (%s); will try again tomorrow.", exc)
    _cleaned_on.add(today)


def _day_of(rest: str) -> date:
    """The date a counter key starts with; date.max (never old) for anything else."""
    try:
        return date.fromisoformat(rest[:10])
    except ValueError:
        return date.max
