"""The store's ledger read below Airflow 3.3: the fallback's Variables, one query for every task instance.

On 3.0-3.2 the seed keeps the ledger in Variables already (as the worker does there); on 3.3 the
``fallback`` fixture copies the seeded task-state-store entries into Variables, then forces the
fallback path. Each test that edits a Variable puts it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ui.conftest import BIG, VideoDB
from tests.ui.seed import FERNET_KEY
from veo_provider import compat
from veo_provider.ledger import LEDGER_KEY, variables
from veo_provider.ledger.database import TaskInstanceRef
from veo_provider.ui import UI_PREFIX, store

RUN = f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos/videos"
FAILED = TaskInstanceRef("videos_dag", "manual__videos", "failed", -1)
CLIP_0 = TaskInstanceRef("videos_dag", "manual__videos", "clips", 0)


@pytest.fixture(scope="module")
def copied_to_variables(video_db: VideoDB) -> Iterator[None]:
    """Every seeded ledger entry in its fallback Variable too (on 3.3; below, the seed wrote only those)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    if not compat.HAS_TASK_STATE_STORE:
        yield
        return
    from airflow.models.task_state_store import TaskStateStoreModel as TSS

    with create_session() as session:
        rows = session.execute(select(TSS).where(TSS.key == LEDGER_KEY)).scalars().all()
        names = []
        for row in rows:
            ref = TaskInstanceRef.of(row)
            names.append(variables.variable_key(ref, LEDGER_KEY))
            envelope = variables.wrap(ref, LEDGER_KEY, json.loads(row.value))
            Variable.set(names[-1], json.dumps(envelope), session=session)
    try:
        yield
    finally:
        with create_session() as session:
            session.execute(delete(Variable).where(Variable.key.in_(names)))


@pytest.fixture
def fallback(copied_to_variables: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "HAS_TASK_STATE_STORE", False)


@pytest.fixture
def ledger_variable(video_db: VideoDB) -> Iterator[Callable[[TaskInstanceRef, str], None]]:
    """``put(ref, stored)``: what ``ref``'s ledger Variable holds in the table (encrypted); put back afterwards."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    saved: dict[str, tuple[str | None, bool]] = {}

    def put(ref: TaskInstanceRef, stored: str) -> None:
        name = variables.variable_key(ref, LEDGER_KEY)
        with create_session() as session:
            row = session.scalar(select(Variable).where(Variable.key == name))
            assert row is not None, f"the seed keeps a ledger Variable for {ref}"
            saved.setdefault(name, (row._val, row.is_encrypted))
            row._val, row.is_encrypted = stored, True

    yield put
    with create_session() as session:
        for name, (raw, encrypted) in saved.items():
            row = session.scalar(select(Variable).where(Variable.key == name))
            row._val, row.is_encrypted = raw, encrypted


def facts(ref: TaskInstanceRef) -> Any:
    from airflow.utils.session import create_session

    with create_session() as session:
        [found] = store.load_task_instances(session, ref.dag_id, ref.run_id, ref.task_id, ref.map_index)
    return found


def encrypted(text: str, key: str = FERNET_KEY) -> str:
    """``text`` as Airflow stores an encrypted Variable's value."""
    from cryptography.fernet import Fernet

    return Fernet(key.encode()).encrypt(text.encode()).decode()


# ------------------------------------------------------------------------------------ refusals


def test_an_envelope_of_another_task_instance_is_not_read_even_under_this_ones_key(fallback, ledger_variable):
    theirs = variables.wrap(CLIP_0, LEDGER_KEY, {"error_code": "copied", "error_message": "not this task's"})
    ledger_variable(FAILED, encrypted(json.dumps(theirs)))
    assert facts(FAILED).ledger == {}


def test_a_ledger_variable_this_api_server_cannot_decrypt_is_left_out_and_the_rest_is_listed(
    fallback, ledger_variable, client: TestClient, video_db: VideoDB
):
    from cryptography.fernet import Fernet

    ours = variables.wrap(FAILED, LEDGER_KEY, {"error_code": "content_policy", "error_message": "hidden"})
    ledger_variable(FAILED, encrypted(json.dumps(ours), key=Fernet.generate_key().decode()))  # another deployment's key
    assert facts(FAILED).ledger == {}
    r = client.get(RUN, headers=video_db.headers("viewer"))
    assert r.status_code == 200
    videos = {v["task_id"]: v for v in r.json()["videos"]}
    assert videos["failed"]["error_code"] is None and "hidden" not in r.text
    assert len(r.json()["videos"]) == 5


@pytest.mark.parametrize("raw", ["not json", json.dumps({"error_code": "bare, no envelope"}), json.dumps([1])])
def test_a_ledger_variable_that_is_not_an_envelope_is_left_out(fallback, ledger_variable, raw):
    ledger_variable(FAILED, encrypted(raw))
    assert facts(FAILED).ledger == {}


# ------------------------------------------------------------------------------------ the read


def test_below_3_3_a_card_shows_the_ledger_facts_its_variable_holds(
    fallback, ledger_variable, client: TestClient, video_db: VideoDB
):
    said = variables.wrap(FAILED, LEDGER_KEY, {"error_code": "quota", "error_message": "as its Variable says"})
    ledger_variable(FAILED, encrypted(json.dumps(said)))
    videos = client.get(RUN, headers=video_db.headers("viewer")).json()["videos"]
    failed = {v["task_id"]: v for v in videos}["failed"]
    assert (failed["error_code"], failed["error_message"]) == ("quota", "as its Variable says")
    assert facts(CLIP_0).ledger["key"] == "key-job-clips-0"


def test_the_fallback_of_100_mapped_task_instances_is_read_in_one_query(
    fallback, client: TestClient, video_db: VideoDB
):
    from airflow import settings
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if any(table in statement for table in ("task_instance", "xcom", "variable", "dag_run")):
            statements.append(statement)

    event.listen(settings.engine, "before_cursor_execute", count)
    try:
        small = client.get(RUN, headers=video_db.headers("viewer"))
        n_small, statements[:] = len(statements), []
        big = client.get(f"{UI_PREFIX}/api/dags/big_dag/dagRuns/manual__big/videos", headers=video_db.headers("viewer"))
        n_big, big_statements = len(statements), list(statements)
    finally:
        event.remove(settings.engine, "before_cursor_execute", count)
    assert small.status_code == big.status_code == 200 and len(big.json()["videos"]) == BIG
    assert n_big == n_small <= 4, (n_small, n_big)
    assert len([s for s in big_statements if "FROM variable" in s]) == 1, big_statements
    from airflow.utils.session import create_session

    with create_session() as session:
        found = store.load_task_instances(session, "big_dag", "manual__big")
    assert [f.ledger.get("key") for f in found] == [f"key-job-many-{i}" for i in range(BIG)]
