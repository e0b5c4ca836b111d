"""The spending cap without a database: counting, messages, the worker's flow, the route, the client."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from fastapi.testclient import TestClient

from tests.support import op
from veo_provider import spending
from veo_provider.callbacks import quota
from veo_provider.callbacks.receiver import create_app
from veo_provider.callbacks.signing import CallbackRejected
from veo_provider.hooks.quota import api_server_base, post_cap_request
from veo_provider.ledger import LEDGER_KEY
from veo_provider.settings import VeoSettings
from veo_provider.spending import CapDecision, CapRequest, Counted, apply_to_counts, scopes_of
from veo_provider.testing.fakes import FakeStore, RecordingTI
from veo_provider.testing.payloads import RUNNING

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


def test_counters_are_variables_named_by_date_in_lock_order():
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


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_max_jobs_per_dag_run_fails_at_parse_time(bad):
    with pytest.raises(ValueError, match="max_jobs_per_dag_run must be a whole number of jobs, at least 1"):
        op(max_jobs_per_dag_run=bad)


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), (3, 3), ("3", 3), (2.0, 2)])
def test_daily_job_limit_extra(raw, expected):
    from airflow.sdk import Connection

    conn = Connection(conn_id="c", conn_type="veo", password="t")
    assert VeoSettings.from_connection(conn, {"daily_job_limit": raw}).daily_job_limit == expected


@pytest.mark.parametrize("raw", [0, -2, 2.5, "many", True])
def test_a_bad_daily_job_limit_names_the_extra(raw):
    from airflow.sdk import Connection

    conn = Connection(conn_id="c", conn_type="veo", password="t")
    with pytest.raises(ValueError, match="'daily_job_limit' must be a whole number of jobs"):
        VeoSettings.from_connection(conn, {"daily_job_limit": raw})


# --------------------------------------------------------------------------- worker flow


class FakeServer:
    """The api-server's decision on an in-memory counter, with the same proof check (the ledger)."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.counts: dict[str, Counted] = {}
        self.asked: list[tuple[str, str]] = []

    def __call__(self, request: CapRequest) -> CapDecision:
        self.asked.append((request.action, request.key))
        entry = self.store.values.get(LEDGER_KEY) or {}
        wanted = "submitting" if request.action == "reserve" else "refused"
        if entry.get("key") != request.key or entry.get("state") != wanted:
            raise spending.SpendingCapError("no such submission")
        scopes = scopes_of(entry.get("caps"), entry.get("conn_id"), "d", "r", TODAY, TODAY)
        counts = [self.counts.setdefault(s.variable, Counted()) for s in scopes]
        return apply_to_counts(request, scopes, counts)


@pytest.fixture
def capped(veo_conn, monkeypatch):
    veo_conn(daily_job_limit=2)
    stores = [FakeStore() for _ in range(4)]
    server = FakeServer(stores[0])
    monkeypatch.setattr(spending, "_ask", lambda r: server(r))
    with respx.mock(base_url="http://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos").mock(
            side_effect=[httpx.Response(200, json={"task_id": f"t-{i}"}) for i in range(1, 4)]
        )
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
        yield server, stores, post


def run(server, store, **kw):
    server.store = store
    return op(**kw).execute({"task_state_store": store, "ti": RecordingTI()})


def test_three_tasks_under_a_daily_limit_of_two_pay_two_and_the_third_fails_before_any_post(capped):
    server, stores, post = capped
    for store in stores[:2]:
        with pytest.raises(TaskDeferred):
            run(server, store)
    assert post.call_count == 2
    with pytest.raises(AirflowFailException, match=r"daily_job_limit=2 allows 2 paid submission") as info:
        run(server, stores[2])
    assert post.call_count == 2, "refused before the paid POST"
    assert "'daily_job_limit' extra of the Veo connection 'veo_default'" in str(info.value)
    assert LEDGER_KEY not in stores[2].values, "nothing is uncertain about a submission never sent"


def test_retries_of_paid_jobs_never_ask_again(capped):
    server, stores, post = capped
    with pytest.raises(TaskDeferred):
        run(server, stores[0])
    asked = list(server.asked)
    for _ in range(3):
        with pytest.raises(TaskDeferred):
            run(server, stores[0])  # a retry resumes the job the ledger holds
    assert server.asked == asked and post.call_count == 1


def test_a_definite_refusal_by_the_api_hands_the_reservation_back(veo_conn, monkeypatch):
    veo_conn(daily_job_limit=1)
    store = FakeStore()
    server = FakeServer(store)
    monkeypatch.setattr(spending, "_ask", lambda r: server(r))
    with respx.mock(base_url="http://veo.test", assert_all_called=False) as api:
        api.post("/veo/videos").mock(
            side_effect=[
                httpx.Response(400, json={"error": {"code": "bad_request", "message": "no"}}),
                httpx.Response(200, json={"task_id": "t-9"}),
            ]
        )
        with pytest.raises(Exception, match="no"):
            run(server, store)
        assert [a for a, _ in server.asked] == ["reserve", "release"]
        assert LEDGER_KEY not in store.values
        with pytest.raises(TaskDeferred):
            run(server, store)  # the one slot is free again
    assert sum(len(c.keys) for c in server.counts.values()) == 1


def test_without_a_cap_nothing_is_asked(veo_conn, monkeypatch):
    monkeypatch.setattr(spending, "_ask", lambda r: pytest.fail("asked without a cap"))
    with respx.mock(base_url="http://veo.test", assert_all_called=False) as api:
        api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        with pytest.raises(TaskDeferred):
            op().execute({"task_state_store": FakeStore(), "ti": RecordingTI()})


def test_a_cap_that_cannot_be_checked_sends_nothing_and_is_retryable(veo_conn, monkeypatch):
    veo_conn(daily_job_limit=2)

    def down(_):
        raise spending.SpendingCapError("Could not check the Veo spending cap")

    monkeypatch.setattr(spending, "_ask", down)
    store = FakeStore()
    with respx.mock(base_url="http://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos")
        with pytest.raises(spending.SpendingCapError):
            op(max_jobs_per_dag_run=3).execute({"task_state_store": store, "ti": RecordingTI()})
    assert post.call_count == 0 and LEDGER_KEY not in store.values


def test_a_cap_without_a_task_state_store_refuses_to_guess(veo_conn):
    veo_conn(daily_job_limit=2)
    with respx.mock(base_url="http://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos")
        with pytest.raises(AirflowFailException, match="needs Airflow's task state store"):
            op().execute({"ti": RecordingTI()})
    assert post.call_count == 0


# ------------------------------------------------------------------------- route + client


def test_the_quota_route_answers_decisions_and_refuses_what_proves_nothing(monkeypatch):
    def fake_apply(request):
        if request.key == "unknown":
            raise CallbackRejected(404, quota.NOT_FOUND, detail="ledger")
        return CapDecision(granted=request.key == "ok")

    monkeypatch.setattr(quota, "_apply", fake_apply)
    client = TestClient(create_app(sink=object()))  # type: ignore[arg-type]
    body = req("ok").model_dump()
    assert client.post("/quota", json=body).json()["granted"] is True
    assert client.post("/quota", json={**body, "key": "no"}).json()["granted"] is False
    assert client.post("/quota", json={**body, "key": "unknown"}).status_code == 404
    assert client.post("/quota", json={**body, "extra": 1}).status_code == 400
    assert client.post("/quota", content=b"x" * 5000).status_code == 413


def test_the_worker_finds_the_api_server_the_way_it_finds_the_execution_api(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow.internal:8080/execution/")
    assert api_server_base() == "http://airflow.internal:8080"


def test_the_client_retries_server_errors_and_then_says_what_to_fix(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow.test/execution/")
    with respx.mock() as mock:
        route = mock.post("http://airflow.test/veo/quota").mock(return_value=httpx.Response(503))
        with pytest.raises(spending.SpendingCapError, match="install the provider there too"):
            post_cap_request(req("a").model_dump())
        assert route.call_count == 3
        route.mock(return_value=httpx.Response(404, json={"detail": "no such submission"}))
        with pytest.raises(spending.SpendingCapError, match="HTTP 404: no such submission"):
            post_cap_request(req("a").model_dump())
        route.mock(return_value=httpx.Response(200, json={"granted": True}))
        assert post_cap_request(req("a").model_dump()) == {"granted": True}
