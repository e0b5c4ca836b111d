"""``POST /veo/quota``: authenticated before anything is read, acting only on what the credential says."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timezone

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from veo_provider.spending import counter
from veo_provider.spending.credential import deployment_key, issue_credential
from veo_provider.spending.route import add_spending_cap_route
from veo_provider.spending.rules import CapDecision, CapRequest, CapRequestRefused

SECRET = "route-test-secret-0123456789abcdef"
REQUEST = CapRequest(action="reserve", dag_id="d", run_id="r", task_id="t", map_index=0, key="k1", ti_id="ti-1")


@pytest.fixture
def counted(monkeypatch):
    """The counter, replaced: what it was asked (the database is tested in test_counter.py)."""
    monkeypatch.setenv("AIRFLOW__VEO__SPENDING_CAP_SECRET", SECRET)
    asked: list[tuple[CapRequest, date | None]] = []

    def count(request: CapRequest, *, today: date | None = None) -> CapDecision:
        asked.append((request, today))
        if request.key == "unknown":
            raise CapRequestRefused(404, counter.NOT_FOUND, detail="ledger")
        if request.key == "busy":
            raise counter.CounterBusy("contended")
        return CapDecision(granted=request.key != "full", cap=None if request.key != "full" else "daily_job_limit")

    monkeypatch.setattr(counter, "count", count)
    return asked


def client() -> TestClient:
    app = FastAPI()
    add_spending_cap_route(app)
    return TestClient(app)


def signed(request: CapRequest = REQUEST, **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_credential(request, deployment_key(), **kw)}"}


def test_a_genuine_request_is_counted_for_the_task_instance_of_its_credential(counted):
    http = client()
    asked_at = time.time()
    answer = http.post("/quota", headers=signed(now=asked_at))
    assert answer.status_code == 200 and answer.json()["granted"] is True
    other = {"action": "reserve", "dag_id": "x", "run_id": "x", "task_id": "victim", "map_index": 0, "key": "k9"}
    assert http.post("/quota", headers=signed(), json=other).status_code == 200
    assert [request for request, _ in counted] == [REQUEST, REQUEST], "the body names nothing"
    assert counted[0][1] == datetime.fromtimestamp(int(asked_at), timezone.utc).date(), "the day it was asked on"
    refused = http.post("/quota", headers=signed(REQUEST.model_copy(update={"key": "full"}))).json()
    assert refused["granted"] is False and refused["cap"] == "daily_job_limit"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer "}],
)
def test_without_a_credential_the_answer_is_401_and_nothing_is_counted(counted, headers):
    body = {**REQUEST.model_dump(), "map_index": 2**70}  # a 500 on the unauthenticated route, before
    answer = client().post("/quota", headers=headers, json=body)
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert answer.json() == {"detail": "the spending-cap request carries no credential"}
    assert counted == []


def test_a_forged_expired_or_foreign_credential_is_one_uniform_403(counted):
    genuine = signed()["Authorization"]
    version, payload, signature = genuine.removeprefix("Bearer ").split(".")
    forged = {
        "other key": {"Authorization": f"Bearer {issue_credential(REQUEST, b'x' * 32)}"},
        "bad signature": {"Authorization": f"Bearer {version}.{payload}.{signature[::-1]}"},
        "expired": signed(now=time.time() - 3600),
        "garbage": {"Authorization": "Bearer not-a-token"},
        "oversized": {"Authorization": "Bearer " + "x" * 70_000},
    }
    http = client()
    for name, headers in forged.items():
        answer = http.post("/quota", headers=headers)
        assert answer.status_code in (401, 403), name
        if answer.status_code == 403:
            assert answer.json() == {"detail": "the spending-cap credential is not valid"}, name
    assert counted == []


def test_nothing_is_read_before_the_credential_is_checked(counted, monkeypatch):
    """No database, connection, Variable, secrets-backend or configuration read for an unauthenticated request."""
    http = client()  # the key is read here, once
    from airflow import settings
    from airflow.configuration import conf
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable

    touched: list[str] = []

    def trap(name):
        def _trap(*args, **kwargs):
            touched.append(name)
            raise AssertionError(f"{name} read before authentication")

        return _trap

    monkeypatch.setattr(conf, "get", trap("conf.get"))
    monkeypatch.setattr(Connection, "get_connection_from_secrets", trap("connection"))
    monkeypatch.setattr(Variable, "get", trap("variable"))
    monkeypatch.setattr(settings, "NonScopedSession", trap("session"), raising=False)
    monkeypatch.setattr(settings, "Session", trap("session"), raising=False)
    for headers in ({}, {"Authorization": "Bearer v1.e30.AAAA"}):
        assert http.post("/quota", headers=headers, json=REQUEST.model_dump()).status_code in (401, 403)
    assert touched == [] and counted == []


def test_a_signed_request_out_of_bounds_is_a_4xx_not_a_500(counted):
    import base64
    import hashlib
    import hmac
    import json

    body = {**REQUEST.model_dump(), "map_index": 2**70, "iat": int(time.time()), "exp": int(time.time()) + 60}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    mac = hmac.new(deployment_key(), f"v1.{payload}".encode(), hashlib.sha256).digest()
    token = f"v1.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    answer = client().post("/quota", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and counted == []


def test_what_proves_nothing_is_a_404_and_a_contended_counter_a_503(counted):
    http = client()
    unknown = http.post("/quota", headers=signed(REQUEST.model_copy(update={"key": "unknown"})))
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no such submission"}
    assert http.post("/quota", headers=signed(REQUEST.model_copy(update={"key": "busy"}))).status_code == 503


def test_an_api_server_without_a_secret_refuses_every_request_and_says_why(monkeypatch, counted, caplog):
    monkeypatch.delenv("AIRFLOW__VEO__SPENDING_CAP_SECRET")
    headers = signed()  # signed by a worker that has one
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "")
    with caplog.at_level(logging.ERROR, logger="veo_provider.spending.route"):
        http = client()
    assert "refuses every request until configured" in caplog.text
    refused = http.post("/quota", headers=headers)
    assert refused.status_code == 403 and refused.json() == {"detail": "the spending-cap credential is not valid"}
    assert http.post("/quota").status_code == 401
    assert counted == []


def test_the_plugin_app_serves_the_spending_cap_route(counted):
    from veo_provider.plugin import build_app

    http = TestClient(build_app())
    assert http.post("/quota").status_code == 401
    assert http.post("/quota", headers=signed()).json()["granted"] is True


def test_every_forgery_of_the_hostile_sweep_is_refused_with_401_or_403(counted):
    """The cluster sweep (tests/reliability/hostile_http.py) sends these to a real api-server; here the route alone."""
    import random

    from tests.reliability.hostile_http import _spending_cap_forgeries

    url = "http://airflow.test/veo/callback?" + "&".join(
        f"{k}={v}" for k, v in {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": "0", "key": "k1"}.items()
    )
    http = client()
    forgeries = _spending_cap_forgeries([url], random.Random(7))
    for kind, body, headers in forgeries:
        kw = {"json": body} if isinstance(body, dict) else {"content": body}
        assert http.post("/quota", headers=headers, **kw).status_code in (401, 403), kind
    assert len(forgeries) >= 7 and counted == []
