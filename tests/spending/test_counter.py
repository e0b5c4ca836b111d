"""The spending-cap counter on a real metadata database: atomic on SQLite and PostgreSQL, authenticated route.

Runs ``counter_scenario.py`` in a subprocess (fresh AIRFLOW_HOME; SQLite always, PostgreSQL
when reachable at 127.0.0.1:5432 in a throwaway database).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.metadata_db import run_scenario, throwaway_database
from tests.spending.counter_scenario import RACES, RETENTION_CASES

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).with_name("counter_scenario.py")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    with throwaway_database(request.param, "veo_cap") as url:
        yield url


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, database_url: str | None) -> dict[str, Any]:
    """One run per database; the tests below read its result."""
    # Counters are then stored encrypted: the compare-and-set compares what is stored.
    env = {"AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode()}
    result, _ = run_scenario(SCENARIO, tmp_path_factory.mktemp("cap-scenario"), database_url, env=env)
    return result


def _counter(result: dict[str, Any], conn_id: str) -> dict[str, Any]:
    [counter] = [v for k, v in result["counters"].items() if k.startswith("veo_quota:day:") and k.endswith(conn_id)]
    return counter


@pytest.mark.parametrize(("prefix", "n", "conn_id", "limit"), RACES)
def test_parallel_reserves_grant_exactly_the_limit_and_the_counter_lists_exactly_those(
    scenario: dict[str, Any], prefix: str, n: int, conn_id: str, limit: int
) -> None:
    outcome = scenario["races"][prefix]
    assert len(outcome) == n and all(isinstance(v, bool) for v in outcome.values()), outcome
    granted = sorted(f"key-{task}" for task, ok in outcome.items() if ok)
    assert len(granted) == min(n, limit), (scenario["dialect"], outcome)
    counter = _counter(scenario, conn_id)
    assert sorted(counter["keys"]) == granted and counter["used"] == len(granted) and counter["limit"] == limit


def test_counters_are_stored_as_airflow_stores_variables(scenario: dict[str, Any]) -> None:
    assert all(c["encrypted"] for c in scenario["counters"].values()), "Fernet-encrypted, read back by Airflow"


def test_without_valid_credentials_the_route_answers_4xx_reads_nothing_and_counts_nothing(
    scenario: dict[str, Any],
) -> None:
    route = scenario["route"]
    for name in ("no_credential", "no_credential_huge_map_index"):
        assert route["answers"][name] == [401, {"detail": "the spending-cap request carries no credential"}], name
    for name in ("forged_signature", "other_deployment", "expired"):
        assert route["answers"][name] == [403, {"detail": "the spending-cap credential is not valid"}], name
    for name in ("no_credential", "no_credential_huge_map_index", "forged_signature", "other_deployment", "expired"):
        assert route["statements"][name] == 0, f"{name}: a database read before authentication"
        assert route["changed"][name] is False, name


def test_a_genuine_credential_counts_its_own_task_instance_only(scenario: dict[str, Any]) -> None:
    answers = scenario["route"]["answers"]
    assert answers["grant"] == [200, {"granted": True, "cap": None, "limit": None, "used": None, "scope": None}]
    assert answers["grant_again"][1]["granted"] is True, "asking again (whatever the body says) is not a second job"
    assert answers["over_the_cap"][0] == 200 and answers["over_the_cap"][1]["granted"] is False
    assert answers["over_the_cap"][1]["cap"] == "daily_job_limit" and answers["over_the_cap"][1]["used"] == 1
    assert _counter(scenario, "veo_route")["keys"] == ["key-capped"]


def test_a_credential_that_proves_nothing_is_a_404_and_changes_nothing(scenario: dict[str, Any]) -> None:
    route = scenario["route"]
    for name in ("previous_try", "wrong_key", "not_running", "release_unproven"):
        assert route["answers"][name] == [404, {"detail": "no such submission"}], name
        assert route["changed"][name] is False, name


def test_the_retention_delete_matches_its_prefix_literally(scenario: dict[str, Any]) -> None:
    kept = scenario["retention"]
    assert kept == {key: expected == "kept" for key, expected in RETENTION_CASES.items()}
    assert any(k.startswith("veo_quota:day:") for k in scenario["counters"]), "today's counters are kept"
