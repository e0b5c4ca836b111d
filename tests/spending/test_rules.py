"""The spending cap's counting rules, without a database: scopes, grants, refusals, messages, bounds."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from tests.operators.test_veo import op
from veo_provider import spending
from veo_provider.settings import VeoSettings
from veo_provider.spending.rules import CapDecision, CapRequest, Counted, apply_to_counts, scopes_of

TODAY = date(2026, 11, 25)


def req(key: str, action: str = "reserve") -> CapRequest:
    return CapRequest(action=action, dag_id="d", run_id="r", task_id="t", map_index=0, key=key)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- counting


def test_a_cap_grants_up_to_its_limit_and_refuses_the_next_key():
    scopes = scopes_of({"daily_job_limit": 2}, "veo_default", "d", "r", TODAY, TODAY)
    counts = [Counted()]
    assert apply_to_counts(req("a"), scopes, counts).granted
    assert apply_to_counts(req("b"), scopes, counts).granted
    refused = apply_to_counts(req("c"), scopes, counts)
    assert (refused.granted, refused.cap, refused.limit, refused.used) == (False, "daily_job_limit", 2, 2)
    assert counts[0].keys == ["a", "b"]


def test_asking_again_for_a_counted_key_is_granted_without_counting_twice():
    scopes = scopes_of({"daily_job_limit": 1}, "c", "d", "r", TODAY, TODAY)
    counts = [Counted()]
    assert apply_to_counts(req("a"), scopes, counts).granted
    assert apply_to_counts(req("a"), scopes, counts).granted, "a lost answer's retry asks again"
    assert counts[0].keys == ["a"]


def test_a_refusal_by_one_cap_consumes_nothing_of_the_other():
    scopes = scopes_of({"daily_job_limit": 5, "max_jobs_per_dag_run": 1}, "c", "d", "r", TODAY, TODAY)
    counts = [Counted(), Counted(["x"])] if scopes[0].cap == "daily_job_limit" else [Counted(["x"]), Counted()]
    assert not apply_to_counts(req("a"), scopes, counts).granted
    assert sorted(len(c.keys) for c in counts) == [0, 1]


def test_a_release_hands_the_key_back_to_every_scope():
    scopes = scopes_of({"daily_job_limit": 1, "max_jobs_per_dag_run": 1}, "c", "d", "r", TODAY, TODAY)
    counts = [Counted(["a"]), Counted(["a"])]
    assert apply_to_counts(req("a", "release"), scopes, counts).granted
    assert [c.keys for c in counts] == [[], []]
    assert apply_to_counts(req("b"), scopes, counts).granted


def test_counters_are_variables_named_by_date_in_write_order():
    scopes = scopes_of(
        {"max_jobs_per_dag_run": 3, "daily_job_limit": 2}, "veo_default", "d", "r", TODAY, date(2026, 11, 24)
    )
    assert [s.variable.split(":")[:3] for s in scopes] == [
        ["veo_quota", "day", "2026-11-25"],
        ["veo_quota", "run", "2026-11-24"],
    ]
    assert scopes[0].variable == "veo_quota:day:2026-11-25:veo_default"
    assert all(len(s.variable) <= 250 for s in scopes_of({"daily_job_limit": 1}, "c" * 250, "d", "r", TODAY, TODAY))
    assert scopes_of(None, "c", "d", "r", TODAY, TODAY) == []


def test_counted_keys_survive_a_damaged_variable():
    assert Counted.load("not json").keys == [] and Counted.load('{"keys": [1, "a"]}').keys == ["a"]


def test_the_refusal_names_the_cap_its_scope_and_how_to_raise_it():
    daily = CapDecision(granted=False, cap="daily_job_limit", limit=2, used=2, scope="connection 'veo_default'")
    text = spending.refusal_message(daily, "veo_default", "generate")
    assert "daily_job_limit=2" in text and "'daily_job_limit' extra of the Veo connection 'veo_default'" in text
    assert "nothing was sent" in text and "00:00 UTC" in text
    per_run = CapDecision(granted=False, cap="max_jobs_per_dag_run", limit=3, used=3, scope="DAG run d/r")
    assert "raise max_jobs_per_dag_run of task 'generate'" in spending.refusal_message(per_run, "c", "generate")


# ----------------------------------------------------------------------- bounded requests


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("map_index", 2**70),
        ("map_index", 2**31),
        ("map_index", -2),
        ("map_index", True),
        ("map_index", "3"),
        ("dag_id", "d" * 251),
        ("run_id", ""),
        ("task_id", "t" * 60_000),
        ("key", "k" * 65),
        ("key", "a key with spaces"),
        ("ti_id", "i" * 65),
    ],
)
def test_a_request_field_out_of_bounds_is_refused_before_it_reaches_a_database(field, value):
    fields = {"action": "reserve", "dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 0, "key": "k1"}
    with pytest.raises(ValidationError, match=field):
        CapRequest.model_validate({**fields, field: value})


def test_a_request_of_a_task_instance_carries_its_try_id():
    class TI:
        dag_id, run_id, task_id, map_index, id = "d", "r", "t", None, "0190-try-2"

    request = CapRequest.of("reserve", TI(), "k1")
    assert (request.map_index, request.ti_id) == (-1, "0190-try-2")


# ---------------------------------------------------------------------------------- limits


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_max_jobs_per_dag_run_fails_at_parse_time(bad):
    with pytest.raises(ValueError, match="max_jobs_per_dag_run must be a whole number of jobs, at least 1"):
        op(max_jobs_per_dag_run=bad)


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), (3, 3), ("3", 3), (2.0, 2)])
def test_daily_job_limit_extra(raw, expected):
    from airflow.providers.common.compat.sdk import Connection

    conn = Connection(conn_id="c", conn_type="veo", password="t")
    assert VeoSettings.from_connection(conn, {"daily_job_limit": raw}).daily_job_limit == expected


@pytest.mark.parametrize("raw", [0, -2, 2.5, "many", True])
def test_a_bad_daily_job_limit_names_the_extra(raw):
    from airflow.providers.common.compat.sdk import Connection

    conn = Connection(conn_id="c", conn_type="veo", password="t")
    with pytest.raises(ValueError, match="'daily_job_limit' must be a whole number of jobs"):
        VeoSettings.from_connection(conn, {"daily_job_limit": raw})
