"""AirflowCallbackPort's transaction threads: calls queued together share one transaction, and a
failure of that transaction costs no callback its answer (sessions and rows are fakes here; the
real database is in ``test_airflow_port.py`` and figure 2 of the benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from veo_provider.callbacks import airflow_port
from veo_provider.callbacks.airflow_port import AirflowCallbackPort
from veo_provider.callbacks.signing import CallbackRejected, CallbackTarget


class _Session:
    def __init__(self, number: int) -> None:
        self.number = number
        self.committed = False


class _Database:
    """Counts sessions; each is committed unless its block raised (as ``create_session``)."""

    def __init__(self) -> None:
        self.sessions: list[_Session] = []
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def create_session(self) -> Iterator[_Session]:
        with self.lock:
            session = _Session(len(self.sessions))
            self.sessions.append(session)
        yield session
        session.committed = True


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> _Database:
    db = _Database()
    monkeypatch.setattr(airflow_port, "create_session", db.create_session)
    monkeypatch.setattr(airflow_port.TaskInstanceRecord, "find", classmethod(lambda cls, *a, **k: None))
    return db


def _target(map_index: int) -> CallbackTarget:
    return CallbackTarget("dag", "run", "task", map_index, f"key-{map_index}", "veo", 2_000_000_000)


def _in_transaction(port: AirflowCallbackPort, map_index: int, outcome: str, gate: threading.Event) -> int:
    """What a decision does: opens the port's transaction; answers the session it ran in."""
    gate.wait(5)  # hold the threads until every call is queued, so they share transactions
    with port.transaction(_target(map_index)) as tx:
        if outcome == "refused":
            raise CallbackRejected(404, "no such task instance")
        if outcome == "broken":
            raise RuntimeError("the database went away")
        return int(tx.session.number)


async def _call_all(port: AirflowCallbackPort, outcomes: list[str]) -> list[Any]:
    gate = threading.Event()
    calls = [port.call(_target(i), _in_transaction, port, i, outcome, gate) for i, outcome in enumerate(outcomes)]
    pending = asyncio.gather(*calls, return_exceptions=True)
    await asyncio.sleep(0.05)
    gate.set()
    return list(await pending)


def test_calls_queued_together_share_one_committed_transaction(database: _Database) -> None:
    port = AirflowCallbackPort()
    answers = asyncio.run(_call_all(port, ["ok"] * 40))
    assert all(isinstance(a, int) for a in answers), answers
    # At most one transaction per thread is busy while the rest queue: far fewer than 40.
    assert len(database.sessions) <= 2 * airflow_port.TX_THREADS, len(database.sessions)
    assert len(set(answers)) < len(answers)
    assert all(s.committed for s in database.sessions)


def test_a_refused_call_is_answered_alone_and_the_others_still_commit(database: _Database) -> None:
    port = AirflowCallbackPort()
    outcomes = ["ok"] * 10 + ["refused"] + ["ok"] * 10
    answers = asyncio.run(_call_all(port, outcomes))
    assert isinstance(answers[10], CallbackRejected) and answers[10].status_code == 404
    assert all(isinstance(a, int) for i, a in enumerate(answers) if i != 10), answers
    assert all(s.committed for s in database.sessions)


def test_a_broken_transaction_is_rolled_back_and_each_of_its_calls_runs_alone(database: _Database) -> None:
    port = AirflowCallbackPort()
    outcomes = ["ok"] * 10 + ["broken"] + ["ok"] * 10
    answers = asyncio.run(_call_all(port, outcomes))
    assert isinstance(answers[10], RuntimeError)
    ok = [a for i, a in enumerate(answers) if i != 10]
    assert all(isinstance(a, int) for a in ok), answers
    # Every call that succeeded did so in a transaction that committed; the broken one's did not.
    by_number = {s.number: s for s in database.sessions}
    assert all(by_number[a].committed for a in ok)
    assert any(not s.committed for s in database.sessions)


def test_a_call_outside_any_storm_runs_in_a_transaction_of_its_own(database: _Database) -> None:
    port = AirflowCallbackPort()
    gate = threading.Event()
    gate.set()
    first = asyncio.run(port.call(_target(0), _in_transaction, port, 0, "ok", gate))
    second = asyncio.run(port.call(_target(1), _in_transaction, port, 1, "ok", gate))
    assert first != second and len(database.sessions) == 2
