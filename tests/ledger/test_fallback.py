"""The ledger's fallback below Airflow 3.3: Airflow Variables, written by the worker, read by the api-server.

Runs on every Airflow version (the flag that picks the fallback is switched here): the worker side
through the Task SDK's ``Variable`` (its supervisor calls replaced by a dict that stores what the
Execution API would store), the server side on a real ``variable`` table in SQLite.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.support import forget_fernet
from veo_provider import compat
from veo_provider.ledger import LEDGER_KEY, STORED_CALLBACK_KEY, Ledger, VariableStore, database, variables
from veo_provider.ledger.database import TaskInstanceRecord, TaskInstanceRef
from veo_provider.models.records import LedgerEntry

REF = TaskInstanceRef("videos", "manual__2025-01-01", "make_video", 3)
ENTRY = {"state": "submitting", "key": "k" * 32, "endpoint": "videos", "conn_id": "veo_default"}


class TI:
    def __init__(self, **kw: Any) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = REF.dag_id, REF.run_id, REF.task_id, REF.map_index
        self.__dict__.update(kw)
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "HAS_TASK_STATE_STORE", False)


@pytest.fixture
def task_variables(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the Execution API keeps for ``Variable.set/get/delete`` from a task: the value as a string."""
    from airflow.providers.common.compat.sdk import Variable

    kept: dict[str, str] = {}

    def get(key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        raw = kept.get(key)
        return default if raw is None else (json.loads(raw) if deserialize_json else raw)

    def set_(key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        kept[key] = json.dumps(value, indent=2) if serialize_json else str(value)

    monkeypatch.setattr(Variable, "get", staticmethod(get))
    monkeypatch.setattr(Variable, "set", staticmethod(set_))
    monkeypatch.setattr(Variable, "delete", staticmethod(lambda key: kept.pop(key, None)))
    return kept


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch):
    """A metadata database with Airflow's own ``variable`` table (SQLite in memory)."""
    from airflow.models.variable import Variable

    engine = create_engine("sqlite://")
    Variable.__table__.create(engine)
    with Session(engine) as s:

        @contextlib.contextmanager
        def same_session():
            yield s
            s.commit()

        monkeypatch.setattr(database, "create_session", same_session)
        yield s


def server_record(session: Session) -> TaskInstanceRecord:
    return TaskInstanceRecord(session, REF, row=None)


# ------------------------------------------------------------------------------ the keys


def test_the_variable_key_is_short_fixed_and_different_per_task_instance_and_key():
    long_ids = TaskInstanceRef("d" * 250, "r" * 250, "t" * 250, 0)
    key = variables.variable_key(long_ids, LEDGER_KEY)
    assert key.startswith(variables.PREFIX) and len(key) == len(variables.PREFIX) + 40
    others = {
        variables.variable_key(TaskInstanceRef("videos", "r", "t", 0), LEDGER_KEY),
        variables.variable_key(TaskInstanceRef("videos", "r", "t", 1), LEDGER_KEY),
        variables.variable_key(TaskInstanceRef("videos", "r", "t", -1), LEDGER_KEY),
        variables.variable_key(TaskInstanceRef("videos", "r", "t", 0), STORED_CALLBACK_KEY),
    }
    assert len(others) == 4
    # None (a TI outside a mapped task in some contexts) and -1 are the same task instance.
    assert variables.variable_key(TI(map_index=None), LEDGER_KEY) == variables.variable_key(
        TI(map_index=-1), LEDGER_KEY
    )


def test_an_envelope_of_another_task_instance_or_key_is_never_read():
    stored = variables.wrap(REF, LEDGER_KEY, ENTRY)
    assert variables.unwrap(REF, LEDGER_KEY, stored) == ENTRY
    assert variables.unwrap(TaskInstanceRef(REF.dag_id, REF.run_id, REF.task_id, 4), LEDGER_KEY, stored) is None
    assert variables.unwrap(REF, STORED_CALLBACK_KEY, stored) is None
    for junk in ("not json", json.dumps(ENTRY), json.dumps([1]), None, {**stored, "veo_ledger": 2}):
        assert variables.unwrap(REF, LEDGER_KEY, junk) is None


# ------------------------------------------------------------------------- the worker side


def test_before_3_3_a_task_without_a_task_state_store_keeps_its_ledger_in_variables(fallback, task_variables):
    ledger = Ledger.of({"ti": TI()})
    assert isinstance(ledger.store, VariableStore) and ledger.durable
    ledger.write(LedgerEntry.model_validate(ENTRY))
    [(name, raw)] = task_variables.items()
    assert name == variables.variable_key(REF, LEDGER_KEY)
    assert json.loads(raw)["task"] == ["videos", "manual__2025-01-01", "make_video", 3]
    again = Ledger.of({"ti": TI()}).get()  # the next try: a new context, the same Variables
    assert again is not None and again.key == ENTRY["key"]
    assert Ledger.of({"ti": TI(map_index=4)}).get() is None  # another mapped copy has its own


def test_a_ledger_write_that_airflow_swallowed_is_an_error_not_a_silent_loss(fallback, task_variables, monkeypatch):
    """``Variable.set`` logs a failed Execution API call and returns (Airflow 3.0-3.2)."""
    from airflow.providers.common.compat.sdk import Variable

    monkeypatch.setattr(Variable, "set", staticmethod(lambda *a, **kw: None))
    with pytest.raises(RuntimeError, match="Could not write the Veo ledger Variable veo_ledger:"):
        Ledger.of({"ti": TI()}).write(LedgerEntry.model_validate(ENTRY))


def test_the_task_state_store_wins_whenever_the_context_has_one(fallback, task_variables):
    class Store(dict):
        def set(self, key, value):
            self[key] = value

    store = Store()
    Ledger.of({"task_state_store": store, "ti": TI()}).write(LedgerEntry.model_validate(ENTRY))
    assert LEDGER_KEY in store and task_variables == {}


def test_on_3_3_the_variables_are_never_used(monkeypatch, task_variables):
    monkeypatch.setattr(compat, "HAS_TASK_STATE_STORE", True)
    assert not Ledger.of({"ti": TI()}).durable


def test_a_try_that_ends_unfinished_keeps_its_variables_and_the_one_that_succeeds_deletes_them(
    fallback, task_variables, veo_conn
):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from tests.operators.test_veo import RECORD_DONE, RUNNING, op

    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
        with pytest.raises(TaskDeferred):
            op().execute({"ti": TI()})  # then the worker is SIGKILLed, or the task cleared
        assert variables.variable_key(REF, LEDGER_KEY) in task_variables
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
        result = op(deferrable=False).execute({"ti": TI()})  # the next try
    assert post.call_count == 1  # resumed t-1, not paid again
    assert result["task_id"] == "t-1" and task_variables == {}


# ------------------------------------------------------------------------- the server side


@pytest.fixture
def fernet_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``fernet_key(key)``: Airflow encrypts and decrypts Variables with ``key`` from now on."""

    def use(key: str) -> None:
        monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
        forget_fernet()

    yield use
    forget_fernet()  # the next Fernet is built after monkeypatch restores the key


def test_the_server_side_reads_many_task_instances_in_one_query_and_only_their_own_envelopes(
    fallback, session, fernet_key
):
    from airflow.models.variable import Variable
    from cryptography.fernet import Fernet
    from sqlalchemy import event

    def keep(ref: TaskInstanceRef, envelope: dict[str, Any]) -> None:
        session.add(Variable(key=variables.variable_key(ref, LEDGER_KEY), val=json.dumps(envelope)))
        session.flush()  # encrypted under the Fernet key configured now

    refs = [TaskInstanceRef("videos", "r", "t", i) for i in range(5)]
    fernet_key(Fernet.generate_key().decode())
    keep(refs[4], variables.wrap(refs[4], LEDGER_KEY, ENTRY))  # another deployment's key
    fernet_key(Fernet.generate_key().decode())
    for ref in refs[:3]:
        keep(ref, variables.wrap(ref, LEDGER_KEY, {**ENTRY, "key": f"k{ref.map_index}"}))
    keep(refs[3], variables.wrap(refs[0], LEDGER_KEY, ENTRY))  # refs[0]'s envelope under refs[3]'s name

    statements: list[str] = []
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        found = database.fallback_values(session, refs, LEDGER_KEY)
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert {ref.map_index: value["key"] for ref, value in found.items()} == {0: "k0", 1: "k1", 2: "k2"}
    assert len(statements) == 1
    assert database.fallback_values(session, [], LEDGER_KEY) == {}


def test_what_the_worker_wrote_the_api_server_reads_and_the_callback_it_stores_the_worker_reads(
    fallback, task_variables, session
):
    from airflow.models.variable import Variable

    Ledger.of({"ti": TI()}).write(LedgerEntry.model_validate(ENTRY))
    for name, raw in task_variables.items():  # as the Execution API route stores them
        session.add(Variable(key=name, val=raw))
    session.flush()
    record = server_record(session)
    assert record.ledger_entry() is not None and record.ledger_entry().key == ENTRY["key"]

    record.write(STORED_CALLBACK_KEY, {"key": ENTRY["key"], "veo_task_id": "t-9"})
    record.write(STORED_CALLBACK_KEY, {"key": ENTRY["key"], "veo_task_id": "t-10"})  # an update, not a second row
    session.commit()
    rows = {v.key: v.val for v in session.query(Variable)}
    assert len(rows) == 2
    task_variables.update(rows)
    assert Ledger.of({"ti": TI()}).store.get(STORED_CALLBACK_KEY) == {"key": ENTRY["key"], "veo_task_id": "t-10"}


def _uuid(column: Any) -> Any:
    """A new id for a UUID column: a ``uuid.UUID`` on SQLAlchemy 2's ``Uuid`` (3.1+), its text before (3.0)."""
    import uuid

    try:
        return uuid.uuid4() if column.type.python_type is uuid.UUID else str(uuid.uuid4())
    except NotImplementedError:
        return str(uuid.uuid4())


@pytest.fixture
def deferred_ti():
    """A metadata database with a deferred task instance, its DAG run and trigger, and a Variable table."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.variable import Variable
    from sqlalchemy import insert

    engine = create_engine("sqlite://")
    for table in (DagRun.__table__, TaskInstance.__table__, Trigger.__table__, Variable.__table__):
        table.create(engine)
    now = datetime.now(timezone.utc)
    with Session(engine) as s:
        s.execute(
            insert(DagRun.__table__).values(
                dag_id=REF.dag_id,
                run_id=REF.run_id,
                run_type="manual",
                state="running",
                clear_number=0,
                run_after=now,
                log_template_id=None,  # not Airflow's default (a read of the log_template table)
            )
        )
        s.execute(insert(Trigger.__table__).values(id=7, classpath="a.Trigger", kwargs="{}", created_date=now))
        columns = {c.name for c in TaskInstance.__table__.c}
        ti = dict(dag_id=REF.dag_id, run_id=REF.run_id, task_id=REF.task_id, map_index=REF.map_index, state="deferred")
        ti.update(id=_uuid(TaskInstance.id), dag_version_id=_uuid(TaskInstance.dag_version_id), try_number=1)
        ti.update(max_tries=0, pool="default_pool")
        ti.update(pool_slots=1, priority_weight=1, trigger_id=7)
        s.execute(insert(TaskInstance.__table__).values(**{k: v for k, v in ti.items() if k in columns}))
        s.commit()
    return engine


def test_the_receivers_read_is_one_statement_and_its_writes_read_nothing_again(fallback, deferred_ti):
    """Before 3.3 the ledger and the stored callback used to cost a statement each, and a write one more."""
    from airflow.models.variable import Variable
    from sqlalchemy import event

    with Session(deferred_ti) as s:
        envelope = json.dumps(variables.wrap(REF, LEDGER_KEY, ENTRY))
        s.add(Variable(key=variables.variable_key(REF, LEDGER_KEY), val=envelope))
        s.commit()
    sent: list[str] = []
    event.listen(deferred_ti, "before_cursor_execute", lambda *args: sent.append(args[2].split()[0]))
    with Session(deferred_ti) as s:
        record = TaskInstanceRecord.find(s, REF, lock=True, preload=(LEDGER_KEY, STORED_CALLBACK_KEY))
        assert record is not None and record.state == "deferred" and record.row.trigger.classpath == "a.Trigger"
        assert record.ledger_entry() is not None and record.ledger_entry().key == ENTRY["key"]
        assert record.stored_callback() is None and record.run_after is not None
        assert sent == ["SELECT"]
        record.write(STORED_CALLBACK_KEY, {"key": ENTRY["key"], "task_id": "t-1"})
        record.write(STORED_CALLBACK_KEY, {"key": ENTRY["key"], "task_id": "t-2"})
        assert record.read(STORED_CALLBACK_KEY) == {"key": ENTRY["key"], "task_id": "t-2"}
        s.commit()
        # The first write looks its Variable up again (the locked read may predate a concurrent insert).
        assert sent == ["SELECT", "SELECT", "INSERT", "UPDATE"]
    with Session(deferred_ti) as s:
        assert server_record(s).read(STORED_CALLBACK_KEY) == {"key": ENTRY["key"], "task_id": "t-2"}
        assert (
            TaskInstanceRecord.find(s, TaskInstanceRef(REF.dag_id, REF.run_id, "other"), preload=(LEDGER_KEY,)) is None
        )


def test_the_server_side_reads_nothing_for_a_task_instance_without_variables(fallback, session):
    assert server_record(session).read(LEDGER_KEY) is None
    assert server_record(session).ledger_entry() is None


def test_the_sweep_drops_only_old_ledger_variables(fallback, session):
    from airflow.models.variable import Variable

    now = datetime.now(timezone.utc)
    old = TaskInstanceRef("videos", "old", "t", -1)
    fresh = TaskInstanceRef("videos", "fresh", "t", -1)
    stale = variables.wrap(old, LEDGER_KEY, ENTRY, now=now - timedelta(days=variables.RETENTION_DAYS + 1))
    session.add(Variable(key=variables.variable_key(old, LEDGER_KEY), val=json.dumps(stale)))
    session.add(
        Variable(
            key=variables.variable_key(fresh, LEDGER_KEY), val=json.dumps(variables.wrap(fresh, LEDGER_KEY, ENTRY))
        )
    )
    session.add(Variable(key="veo_ledgerX:not-ours", val="{}"))  # the prefix is literal
    session.add(Variable(key="someone_else", val="old"))
    session.commit()
    assert database.sweep_fallback(now) == 1
    assert sorted(v.key for v in session.query(Variable)) == sorted(
        [variables.variable_key(fresh, LEDGER_KEY), "veo_ledgerX:not-ours", "someone_else"]
    )


def test_on_3_3_the_sweep_touches_nothing(monkeypatch):
    monkeypatch.setattr(compat, "HAS_TASK_STATE_STORE", True)
    assert database.sweep_fallback() == 0 and database.start_sweeper() is None


# ------------------------------------------------- no read of a Variable that cannot exist


@pytest.fixture
def missing_reads(task_variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Reads of a Variable that does not exist: Airflow 3.0 and 3.1 log each at error level in the task log."""
    from airflow.providers.common.compat.sdk import Variable

    misses: list[str] = []
    read = Variable.get

    def get(key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        if key not in task_variables:
            misses.append(key)
        return read(key, default, deserialize_json)

    monkeypatch.setattr(Variable, "get", staticmethod(get))
    return misses


def test_a_first_try_reads_no_missing_variable_from_submission_to_success(fallback, missing_reads, veo_conn):

    from tests.operators.test_veo import RECORD_DONE, op

    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
        result = op(deferrable=False).execute({"ti": TI(try_number=1)})
    assert result["task_id"] == "t-1"
    assert missing_reads == []


def test_a_retry_reads_the_ledger_of_the_try_before_it(fallback, task_variables, missing_reads, veo_conn):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from tests.operators.test_veo import RUNNING, op

    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
        with pytest.raises(TaskDeferred):
            op().execute({"ti": TI(try_number=1)})
        with pytest.raises(TaskDeferred):
            op().execute({"ti": TI(try_number=2)})  # the worker was killed: the next try resumes t-1
    assert post.call_count == 1 and missing_reads == []


def test_a_refused_submission_empties_the_ledger_so_the_next_try_pays_once_and_reads_no_missing_variable(
    fallback, task_variables, missing_reads, veo_conn
):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from tests.operators.test_veo import RUNNING, op
    from veo_provider.exceptions import VeoError

    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos")
        post.mock(return_value=httpx.Response(400, json={"error": {"code": "bad_request", "message": "no"}}))
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
        with pytest.raises(VeoError):
            op(retries=1).execute({"ti": TI(try_number=1)})
        assert Ledger.of({"ti": TI(try_number=2)}).get() is None  # nothing was created
        post.mock(return_value=httpx.Response(200, json={"task_id": "t-2"}))
        with pytest.raises(TaskDeferred):
            op(retries=1).execute({"ti": TI(try_number=2)})
    assert post.call_count == 2 and missing_reads == []
