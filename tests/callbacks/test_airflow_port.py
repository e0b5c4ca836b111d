"""AirflowCallbackPort on a real metadata database, inside Airflow's own api-server app.

Runs ``airflow_port_scenario.py`` in a subprocess (fresh AIRFLOW_HOME; SQLite always,
PostgreSQL when reachable, where the TI row lock is a real ``SELECT ... FOR UPDATE OF``), with the
ledger in the task state store (Airflow 3.3+) and in the fallback's Variables (below 3.3).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.callbacks.airflow_port_scenario import LOST
from tests.metadata_db import run_scenario, throwaway_database
from veo_provider.models import VeoEvent

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).with_name("airflow_port_scenario.py")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    with throwaway_database(request.param, "veo_cb") as url:
        yield url


@pytest.fixture(scope="module", params=["state_store", "variables"])
def ledger(request: pytest.FixtureRequest) -> str:
    """Where the ledger lives: Airflow 3.3's task state store, or the fallback's Variables below 3.3."""
    return str(request.param)


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None, ledger: str
) -> tuple[dict[str, Any], str]:
    """One run per database and ledger; the tests below read its result."""
    tmp = tmp_path_factory.mktemp("callback-scenario")
    result = run_scenario(SCENARIO, tmp, database_url, env={"VEO_SCENARIO_LEDGER": ledger}, timeout=300)
    assert result[0]["ledger"] == ledger
    return result


def test_callback_resumes_the_deferred_task_with_a_wake_up_and_stores_nothing(
    scenario: tuple[dict[str, Any], str],
) -> None:
    result, _ = scenario
    assert result["answers"]["success"] == [200, {"status": "resumed", "resumed": True}]
    assert result["after_success"]["store"]["veo_callback"] is None, "the ledger names the job: nothing to keep"
    ti = result["after_success"]
    assert ti["state"] == "scheduled" and ti["trigger_id"] is None and ti["next_method"] == "execute_complete"
    event = VeoEvent.read(ti["next_kwargs"]["event"])  # a wake-up: ids only, no body
    assert (event.status, event.source, event.veo_task_id, event.submission_key) == (
        "callback",
        "callback",
        "job-1",
        "key-1",
    )
    assert event.result is None
    assert ti["store"]["veo_submission"]["task_id"] == "job-1"  # already known: left as it was


def test_a_replay_resumes_nothing_and_is_kept_once(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    assert result["answers"]["replay"] == [200, {"status": "stored", "resumed": False}]
    assert result["answers"]["duplicate"] == [200, {"status": "duplicate", "resumed": False}]
    # What the worker's ledger store returns (context["task_state_store"].get(...), or its Variable): plain dicts.
    stored = result["make_video"]["store"]["veo_callback"]
    assert stored["key"] == "key-1" and stored["task_id"] == "job-1" and stored["claimed_state"] == "succeeded"
    assert "body" not in stored
    assert result["make_video"]["state"] == "scheduled", "resumed once, by the first callback"


def test_a_lost_submissions_callback_is_stored_for_the_worker_to_verify(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    assert result["answers"]["lost_answer"] == [200, {"status": "stored", "resumed": False}]
    ti = result["lost_answer"]
    assert ti["state"] == "failed"
    ledger = ti["store"]["veo_submission"]
    assert ledger["state"] == "submitting" and ledger["task_id"] is None, "only the worker writes the ledger"
    assert ti["store"]["veo_callback"]["task_id"] == LOST["task_id"]


def test_rejections_store_nothing(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    assert result["answers"]["stale_key"][0] == 404
    assert result["answers"]["unknown_conn"][0] == 403
    # the only callback stored for lost_answer is the valid one (key-2), from before the rejections
    assert result["lost_answer"]["store"]["veo_callback"]["key"] == "key-2"


def test_signatures_never_reach_the_api_server_logs(scenario: tuple[dict[str, Any], str]) -> None:
    result, logs = scenario
    assert "request finished" in logs and "/veo/callback" in logs, "Airflow's access log ran"
    for sig in result["signatures"]:
        assert sig not in logs


#: Database round trips (statements, commits, rollbacks) of one genuine callback: one SELECT of the
#: locked row with its DAG run, trigger and both stored values (task state store rows, or the
#: fallback's Variables), the resume's UPDATE (Airflow's handle_event_submit), COMMIT. Nothing is
#: stored: the task's ledger already names the job the callback is about.
GENUINE_ROUND_TRIPS = 3


def test_a_genuine_callback_costs_at_most_three_database_round_trips(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    sent = result["round_trips"]["success"]
    assert len(sent) <= GENUINE_ROUND_TRIPS, sent
    assert sum(s.startswith("SELECT") for s in sent) == 1, sent
    assert [s.split()[0] for s in sent if not s.startswith("SELECT")] == ["UPDATE", "COMMIT"], sent


def test_a_lost_submissions_callback_costs_one_locked_read_and_one_write(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    sent = result["round_trips"]["lost_answer"]
    # The fallback looks a Variable up again before inserting it (ledger/database.py says why).
    lookup = ["SELECT"] if result["ledger"] == "variables" else []
    assert [s.split()[0] for s in sent] == ["SELECT", *lookup, "INSERT", "COMMIT"], sent


def test_a_replayed_callback_costs_one_read_and_writes_nothing(scenario: tuple[dict[str, Any], str]) -> None:
    result, _ = scenario
    sent = result["round_trips"]["duplicate"]
    assert [s.split()[0] for s in sent] == ["SELECT", "COMMIT"], sent


@pytest.fixture
def connection_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection the port reads, answered from a dict (``{"callback_secret": ...}`` extras)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    reads: list[str] = []
    extras = {"veo_callback": {"callback_secret": "s" * 32}, "veo_plain": {}}

    def lookup(conn_id: str) -> Connection:
        reads.append(conn_id)
        if conn_id not in extras:
            raise AirflowNotFoundException(conn_id)
        return Connection(conn_id=conn_id, conn_type="veo", extra=extras[conn_id])

    monkeypatch.setattr(Connection, "get_connection_from_secrets", staticmethod(lookup))
    return reads


def test_a_storm_reads_the_connections_secrets_once_per_ttl(connection_reads, monkeypatch) -> None:
    from veo_provider.callbacks import airflow_port

    port = airflow_port.AirflowCallbackPort()
    clock = [1000.0]
    monkeypatch.setattr(airflow_port.time, "monotonic", lambda: clock[0])
    assert [port.secrets_for("veo_callback") for _ in range(100)] == [["s" * 32]] * 100
    assert connection_reads == ["veo_callback"]
    clock[0] += airflow_port.SECRETS_TTL  # a removed or rotated secret is seen within the TTL
    port.secrets_for("veo_callback")
    assert connection_reads == ["veo_callback"] * 2


def test_unknown_or_unsigned_connections_are_not_kept(connection_reads) -> None:
    from veo_provider.callbacks.airflow_port import AirflowCallbackPort

    port = AirflowCallbackPort()
    for _ in range(3):
        assert port.secrets_for("forged-id") == [] and port.secrets_for("veo_plain") == []
    assert connection_reads == ["forged-id", "veo_plain"] * 3  # read each time: given a secret, it works at once
    assert port._secrets == {}
