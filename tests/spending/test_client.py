"""The worker's side of the spending cap: reserve before the paid POST, release after a refusal, ask signed."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from tests.operators.test_veo import RUNNING, FakeStore, RecordingTI, op
from veo_provider.exceptions import SpendingCapError, SpendingCapMisconfigured
from veo_provider.ledger import LEDGER_KEY
from veo_provider.spending import client as cap_client
from veo_provider.spending import counter
from veo_provider.spending.credential import deployment_key, verify_credential
from veo_provider.spending.rules import CapDecision, CapRequest, CapRequestRefused, Counted, apply_to_counts, scopes_of

TODAY = date(2026, 11, 25)
SECRET = "client-test-secret-0123456789abcdef"
REQUEST = CapRequest(action="reserve", dag_id="d", run_id="r", task_id="t", map_index=0, key="k1", ti_id="ti-1")


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
            raise SpendingCapError("no such submission")
        scopes = scopes_of(entry.get("caps"), entry.get("conn_id"), "d", "r", TODAY, TODAY)
        counts = [self.counts.setdefault(s.variable, Counted()) for s in scopes]
        return apply_to_counts(request, scopes, counts)


@pytest.fixture
def capped(veo_conn, monkeypatch):
    veo_conn(daily_job_limit=2)
    stores = [FakeStore() for _ in range(4)]
    server = FakeServer(stores[0])
    monkeypatch.setattr(cap_client, "_ask", lambda r: server(r))
    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos").mock(
            side_effect=[httpx.Response(200, json={"task_id": f"t-{i}"}) for i in range(1, 4)]
        )
        api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
        yield server, stores, post


def run(server, store, **kw):
    server.store = store
    return op(**kw).execute({"task_state_store": store, "ti": RecordingTI()})


# --------------------------------------------------------------------------- worker flow


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
    monkeypatch.setattr(cap_client, "_ask", lambda r: server(r))
    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
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
    monkeypatch.setattr(cap_client, "_ask", lambda r: pytest.fail("asked without a cap"))
    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        with pytest.raises(TaskDeferred):
            op().execute({"task_state_store": FakeStore(), "ti": RecordingTI()})


def test_a_cap_that_cannot_be_checked_sends_nothing_and_is_retryable(veo_conn, monkeypatch):
    veo_conn(daily_job_limit=2)

    def down(_):
        raise SpendingCapError("Could not check the Veo spending cap")

    monkeypatch.setattr(cap_client, "_ask", down)
    store = FakeStore()
    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos")
        with pytest.raises(SpendingCapError) as info:
            op(max_jobs_per_dag_run=3).execute({"task_state_store": store, "ti": RecordingTI()})
    assert info.value.retryable and not isinstance(info.value, AirflowFailException)
    assert post.call_count == 0 and LEDGER_KEY not in store.values


def test_a_cap_without_a_ledger_refuses_to_guess(veo_conn):
    """No task state store and no task instance to name Variables after: nothing to count against."""
    veo_conn(daily_job_limit=2)
    with respx.mock(base_url="https://veo.test", assert_all_called=False) as api:
        post = api.post("/veo/videos")
        with pytest.raises(AirflowFailException, match="needs this task's ledger"):
            op().execute({})
    assert post.call_count == 0


# ------------------------------------------------------------------- asking the api-server


@pytest.fixture
def api_server(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow.test/execution/")
    monkeypatch.setenv("AIRFLOW__VEO__SPENDING_CAP_SECRET", SECRET)
    monkeypatch.setattr("veo_provider.runtime.in_process", lambda: False)
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post("http://airflow.test/veo/quota")


def test_the_worker_signs_its_request_and_the_route_acts_on_it(api_server, monkeypatch):
    """Worker and route end to end (the counter replaced): the credential the worker makes is accepted."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from veo_provider.spending.route import add_spending_cap_route

    asked: list[CapRequest] = []
    monkeypatch.setattr(
        counter, "count", lambda request, today=None: asked.append(request) or CapDecision(granted=True)
    )
    app = FastAPI()
    add_spending_cap_route(app)
    http = TestClient(app)

    def forward(request: httpx.Request) -> httpx.Response:
        answer = http.post("/quota", headers={"Authorization": request.headers["authorization"]})
        return httpx.Response(answer.status_code, json=answer.json())

    api_server.mock(side_effect=forward)
    assert cap_client._ask(REQUEST) == CapDecision(granted=True)
    assert asked == [REQUEST]
    token = api_server.calls.last.request.headers["authorization"].removeprefix("Bearer ")
    assert verify_credential(token, deployment_key()).request() == REQUEST
    assert b"k1" not in api_server.calls.last.request.content, "the body carries nothing to act on"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_credential_is_final_and_says_which_secret_to_share(api_server, status):
    api_server.mock(return_value=httpx.Response(status, json={"detail": "the spending-cap credential is not valid"}))
    with pytest.raises(SpendingCapMisconfigured, match=r"same \[veo\] spending_cap_secret") as info:
        cap_client._ask(REQUEST)
    assert isinstance(info.value, AirflowFailException), "a retry would be refused the same way"
    assert api_server.call_count == 1


def test_without_a_secret_the_worker_sends_nothing(api_server, monkeypatch):
    monkeypatch.delenv("AIRFLOW__VEO__SPENDING_CAP_SECRET")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "")
    with pytest.raises(SpendingCapMisconfigured, match="AIRFLOW__VEO__SPENDING_CAP_SECRET"):
        cap_client._ask(REQUEST)
    assert api_server.call_count == 0


def test_server_errors_are_asked_again_and_then_say_what_to_fix(api_server):
    api_server.mock(return_value=httpx.Response(503))
    with pytest.raises(SpendingCapError, match="install the provider there too"):
        cap_client._ask(REQUEST)
    assert api_server.call_count == 3
    api_server.mock(return_value=httpx.Response(404, json={"detail": "no such submission"}))
    with pytest.raises(SpendingCapError, match="HTTP 404: no such submission"):
        cap_client._ask(REQUEST)
    api_server.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(SpendingCapError, match="ConnectError") as info:
        cap_client._ask(REQUEST)
    assert not isinstance(info.value, AirflowFailException)


def test_a_request_without_a_task_instance_id_is_not_sent(api_server):
    with pytest.raises(SpendingCapError, match="task instance's id"):
        cap_client._ask(REQUEST.model_copy(update={"ti_id": None}))
    assert api_server.call_count == 0


def test_in_process_the_count_runs_here_without_http(api_server, monkeypatch):
    monkeypatch.setattr("veo_provider.runtime.in_process", lambda: True)
    monkeypatch.setattr(counter, "count", lambda request: CapDecision(granted=request.key == "k1"))
    assert cap_client._ask(REQUEST).granted is True

    def unproven(request):
        raise CapRequestRefused(404, counter.NOT_FOUND, detail="ledger is not 'submitting'")

    monkeypatch.setattr(counter, "count", unproven)
    with pytest.raises(SpendingCapError, match="refused to count this submission"):
        cap_client._ask(REQUEST)
    assert api_server.call_count == 0
