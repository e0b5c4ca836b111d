"""HTTP to our own api-server routes: found like the Execution API, idempotent retries only when asked."""

from __future__ import annotations

import httpx
import pytest
import respx

from veo_provider.exceptions import VeoTransportError
from veo_provider.hooks.api_server import api_server_base, post_json


@pytest.fixture
def route(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow.test/execution/")
    with respx.mock() as mock:
        yield mock.post("http://airflow.test/veo/thing")


def test_the_worker_finds_the_api_server_the_way_it_finds_the_execution_api(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow.internal:8080/execution/")
    assert api_server_base() == "http://airflow.internal:8080"


def test_an_answer_comes_back_with_its_status_and_json_and_the_headers_are_sent(route):
    route.mock(return_value=httpx.Response(200, json={"ok": True}))
    answer = post_json("/veo/thing", {"a": 1}, headers={"Authorization": "Bearer t"})
    assert (answer.status, answer.json, answer.url) == (200, {"ok": True}, "http://airflow.test/veo/thing")
    assert route.calls.last.request.headers["authorization"] == "Bearer t"
    route.mock(return_value=httpx.Response(404, text="<html>not found</html>"))
    assert post_json("/veo/thing", {}).json is None, "a body that is not a JSON object is no answer"


def test_one_attempt_unless_the_caller_says_the_route_is_idempotent(route):
    route.mock(return_value=httpx.Response(503))
    assert post_json("/veo/thing", {}).status == 503 and route.call_count == 1
    assert post_json("/veo/thing", {}, attempts=3).status == 503 and route.call_count == 4
    route.mock(side_effect=[httpx.Response(502), httpx.Response(200, json={"ok": 1})])
    assert post_json("/veo/thing", {}, attempts=3).json == {"ok": 1}


def test_4xx_answers_are_not_asked_again(route):
    route.mock(return_value=httpx.Response(403, json={"detail": "no"}))
    assert post_json("/veo/thing", {}, attempts=3).status == 403 and route.call_count == 1


def test_no_answer_at_all_is_a_transport_error_naming_the_url_but_never_the_headers(route):
    route.mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(VeoTransportError, match=r"airflow\.test/veo/thing") as info:
        post_json("/veo/thing", {}, headers={"Authorization": "Bearer secret-token"}, attempts=2)
    assert route.call_count == 2 and "secret-token" not in str(info.value)
