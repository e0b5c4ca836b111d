"""The callback app and decision over an in-memory port: every rejection stores nothing; valid callbacks resume."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from veo_provider.callbacks.app import create_app
from veo_provider.callbacks.decision import FORBIDDEN, LOST_ANSWER_WAIT, CallbackPort, LoadedTaskInstance
from veo_provider.callbacks.limits import MAX_BODY_BYTES
from veo_provider.callbacks.signing import SIGNATURE_PARAM, CallbackTarget, sign_callback_url
from veo_provider.ledger import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.models import VeoEvent
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH
from veo_provider.resume_hold import RESUME_HOLD

SECRET = "cb-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OLD_SECRET = "cb-old-secret-9876543210-zyxwvutsrqponmlkjihgfedcba"
KEY = "ab" * 16
TI_KEY = ("videos", "manual__1", "make_video", -1)

SUCCESS = {
    "success": True,
    "task_id": "job-1",
    "trace_id": "tr-1",
    "data": [{"id": "v-1", "video_url": "https://cdn.example/v.mp4", "state": "succeeded"}],
}
FAILURE = {
    "success": False,
    "task_id": "job-1",
    "trace_id": "tr-1",
    "error": {"code": "forbidden", "message": "content moderation"},
}
RUNNING = {"success": True, "task_id": "job-1", "trace_id": "tr-1", "data": [{"id": "v-1", "state": "running"}]}


class FakePort(CallbackPort):
    """Task instances in a dict; records every write so tests can prove nothing was written."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {"veo_default": [SECRET]}
        self.tis: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        self.stores: list[tuple[CallbackTarget, dict[str, Any]]] = []
        self.resumes: list[tuple[CallbackTarget, dict[str, Any]]] = []
        self.transactions = 0
        self.add_ti()

    def add_ti(
        self,
        ti_key: tuple[str, str, str, int] = TI_KEY,
        *,
        state: str | None = "deferred",
        ledger: dict[str, Any] | None = None,
        trigger_key: str | None = KEY,
        deferred_seconds: float | None = 60.0,
    ) -> dict[str, Any]:
        ti: dict[str, Any] = {
            "state": state,
            "deferred_seconds": deferred_seconds,
            "store": {
                LEDGER_KEY: ledger
                if ledger is not None
                else {
                    "state": "submitted",
                    "key": KEY,
                    "task_id": "job-1",
                    "trace_id": "tr-0",
                    "endpoint": "videos",
                    "conn_id": "veo_default",
                }
            },
            "trigger": (
                VEO_TRIGGER_CLASSPATH,
                {
                    "conn_id": "veo_default",
                    "veo_task_id": "job-1",
                    "submission_key": trigger_key,
                    "wait_mode": "callback",
                },
            )
            if trigger_key
            else (None, None),
        }
        self.tis[ti_key] = ti
        return ti

    @staticmethod
    def _key(t: CallbackTarget) -> tuple[str, str, str, int]:
        return (t.dag_id, t.run_id, t.task_id, t.map_index)

    def secrets_for(self, conn_id: str) -> list[str]:
        return list(self.secrets.get(conn_id, []))

    def transaction(self, target: CallbackTarget) -> Any:
        self.transactions += 1
        return super().transaction(target)

    def load(self, target: CallbackTarget) -> LoadedTaskInstance | None:
        ti = self.tis.get(self._key(target))
        if ti is None:
            return None
        return LoadedTaskInstance(
            state=ti["state"],
            ledger=copy.deepcopy(ti["store"].get(LEDGER_KEY)),
            stored_callback=copy.deepcopy(ti["store"].get(STORED_CALLBACK_KEY)),
            trigger_classpath=ti["trigger"][0],
            trigger_kwargs=copy.deepcopy(ti["trigger"][1]),
            deferred_seconds=ti["deferred_seconds"],
        )

    def store(self, target: CallbackTarget, stored: dict[str, Any]) -> None:
        self.stores.append((target, stored))
        self.tis[self._key(target)]["store"][STORED_CALLBACK_KEY] = stored

    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        self.resumes.append((target, payload))
        self.tis[self._key(target)]["state"] = "scheduled"
        return True

    def assert_untouched(self) -> None:
        assert self.stores == [] and self.resumes == []


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture
def client(port: FakePort) -> TestClient:
    return TestClient(create_app(port))


def make_target(**kw: Any) -> CallbackTarget:
    fields: dict[str, Any] = {
        "dag_id": TI_KEY[0],
        "run_id": TI_KEY[1],
        "task_id": TI_KEY[2],
        "map_index": TI_KEY[3],
        "submission_key": KEY,
        "conn_id": "veo_default",
        "expires_at": int(time.time()) + 3600,
    }
    return CallbackTarget(**{**fields, **kw})


def url_for(secret: str = SECRET, **kw: Any) -> str:
    """The path + query the receiver app sees (the plugin mounts it at /veo)."""
    full = sign_callback_url("https://airflow.example.com/veo", make_target(**kw), secret)
    return "/callback?" + urlsplit(full).query


def tamper(url: str, **changes: str) -> str:
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    params.update(changes)
    return "/callback?" + urlencode(params)


def sig_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))[SIGNATURE_PARAM]


# ------------------------------------------------------------------------------ security


def test_wrong_signature_is_403(client: TestClient, port: FakePort) -> None:
    r = client.post(url_for(secret="x" * 40), json=SUCCESS)
    assert r.status_code == 403
    assert r.json() == {"detail": FORBIDDEN}
    port.assert_untouched()


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("dag_id", "other_dag"),
        ("run_id", "manual__2"),
        ("task_id", "other_task"),
        ("map_index", "0"),
        ("key", "cd" * 16),
        ("conn_id", "veo_other"),
        ("exp", "4102444800"),  # a later expiry (2100), fixed so that test ids are the same in every process
    ],
)
def test_tampered_url_is_403(client: TestClient, port: FakePort, param: str, value: str) -> None:
    port.secrets["veo_other"] = [SECRET]  # even a connection sharing the secret cannot be swapped in
    port.add_ti(("other_dag", "manual__1", "make_video", -1))
    r = client.post(tamper(url_for(), **{param: value}), json=SUCCESS)
    assert r.status_code == 403
    port.assert_untouched()


def test_missing_signature_is_403(client: TestClient, port: FakePort) -> None:
    params = dict(parse_qsl(urlsplit(url_for()).query))
    del params[SIGNATURE_PARAM]
    r = client.post("/callback?" + urlencode(params), json=SUCCESS)
    assert r.status_code == 403
    port.assert_untouched()


def _unsigned_missing_run_id() -> str:
    params = dict(parse_qsl(urlsplit(url_for()).query))
    del params["run_id"]
    return "/callback?" + urlencode(params)


@pytest.mark.parametrize(
    "make_url",
    [
        lambda: url_for(secret="x" * 40),  # wrong secret
        lambda: url_for(conn_id="veo_missing"),  # no such connection
        lambda: url_for(conn_id="veo_nosecret"),  # a connection without a callback secret
        lambda: url_for(expires_at=int(time.time()) - 1),  # expired
        _unsigned_missing_run_id,  # malformed
        lambda: url_for() + "&dag_id=other_dag",  # repeated parameter
        lambda: "/callback?conn_id=veo_default",  # unsigned
    ],
)
def test_every_authentication_failure_is_the_same_403(client: TestClient, port: FakePort, make_url: Any) -> None:
    """The answer never tells which connections have a secret, or why a URL failed."""
    port.secrets["veo_nosecret"] = []
    r = client.post(make_url(), json=SUCCESS)
    assert (r.status_code, r.json()) == (403, {"detail": FORBIDDEN})
    port.assert_untouched()


def test_signature_is_checked_before_the_body_is_read(client: TestClient, port: FakePort) -> None:
    body = b'{"task_id": "job-1", "pad": "' + b"x" * (2 * MAX_BODY_BYTES) + b'"}'
    r = client.post(url_for(secret="x" * 40), content=body, headers={"content-type": "application/json"})
    assert r.status_code == 403, "an unsigned request never gets to send a body we read"
    port.assert_untouched()


def test_a_secret_of_another_connection_cannot_wake_this_task(client: TestClient, port: FakePort) -> None:
    """Any connection's secret used to authorize callbacks to any task."""
    other = "other-secret-0123456789-abcdefghijklmnop"
    port.secrets["veo_other"] = [other]
    r = client.post(url_for(secret=other, conn_id="veo_other"), json=SUCCESS)
    assert (r.status_code, r.json()) == (403, {"detail": FORBIDDEN})
    port.assert_untouched()


def test_a_ledger_that_names_no_connection_accepts_no_callback(client: TestClient, port: FakePort) -> None:
    """Only the connection the submission went through may wake the task; the trigger's is not asked."""
    del port.tis[TI_KEY]["store"][LEDGER_KEY]["conn_id"]
    r = client.post(url_for(), json=SUCCESS)
    assert (r.status_code, r.json()) == (403, {"detail": FORBIDDEN})
    port.assert_untouched()


def test_a_replayed_callback_resumes_nothing_and_is_stored_once(client: TestClient, port: FakePort) -> None:
    url = url_for()
    assert client.post(url, json=SUCCESS).json() == {"status": "resumed", "resumed": True}
    # The task has left the deferral: the replay is kept like any callback for a task that does not wait.
    assert client.post(url, json=SUCCESS).json() == {"status": "stored", "resumed": False}
    stored = copy.deepcopy(port.tis[TI_KEY]["store"])
    r = client.post(url, json=SUCCESS)
    assert r.status_code == 200 and r.json() == {"status": "duplicate", "resumed": False}
    assert len(port.stores) == 1 and len(port.resumes) == 1
    assert port.tis[TI_KEY]["store"] == stored


def test_the_same_callback_sent_again_resumes_a_task_that_waits_and_was_not_resumed(
    client: TestClient, port: FakePort
) -> None:
    """A failed resume used to be final: the same callback sent again was a 'duplicate' and resumed nothing."""
    port.tis[TI_KEY]["state"] = "running"  # the first callback races the deferral
    url = url_for()
    assert client.post(url, json=SUCCESS).json() == {"status": "stored", "resumed": False}
    port.tis[TI_KEY]["state"] = "deferred"
    assert client.post(url, json=SUCCESS).json() == {"status": "duplicate", "resumed": True}


def test_a_forged_callback_does_not_block_the_genuine_one(client: TestClient, port: FakePort) -> None:
    """The first stored callback used to stick: the vendor's genuine callback was then dropped as a duplicate."""
    url = url_for()  # one leaked URL
    forged = {**FAILURE, "error": {"code": "forbidden", "message": "FORGED: pay me"}}
    assert client.post(url, json=forged).json() == {"status": "resumed", "resumed": True}
    port.tis[TI_KEY]["state"] = "running"  # the task read the API, saw it running, is deferring again
    assert client.post(url, json=forged).json() == {"status": "stored", "resumed": False}
    port.tis[TI_KEY]["state"] = "deferred"
    assert client.post(url, json=SUCCESS).json() == {"status": "resumed", "resumed": True}
    assert len(port.resumes) == 2
    assert "FORGED" not in str(port.resumes) + str(port.tis[TI_KEY]["store"]), "no body text is kept or passed on"


def test_a_final_callback_replaces_a_stored_running_one_and_not_back(client: TestClient, port: FakePort) -> None:
    """What the operator reads before it defers (callbacks that came while it was running)."""
    port.tis[TI_KEY]["state"] = "running"
    url = url_for()
    assert client.post(url, json=RUNNING).json() == {"status": "stored", "resumed": False}
    assert client.post(url, json=SUCCESS).json() == {"status": "stored", "resumed": False}
    assert port.tis[TI_KEY]["store"][STORED_CALLBACK_KEY]["claimed_state"] == "succeeded"
    client.post(url, json={**RUNNING, "trace_id": "other"})
    assert port.tis[TI_KEY]["store"][STORED_CALLBACK_KEY]["claimed_state"] == "succeeded"


def test_deeply_nested_body_is_400_and_stores_nothing(client: TestClient, port: FakePort) -> None:
    """A body nested 256 deep used to be stored and then fail with 500."""
    body = b'{"task_id": "job-1", "x": ' + b"[" * 256 + b"]" * 256 + b"}"
    r = client.post(url_for(), content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "deeper" in r.json()["detail"]
    port.assert_untouched()


@pytest.mark.parametrize("declare_length", [True, False])
def test_body_over_one_mib_is_413(client: TestClient, port: FakePort, declare_length: bool) -> None:
    body = b'{"task_id": "job-1", "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert len(body) > MAX_BODY_BYTES
    if declare_length:
        r = client.post(url_for(), content=body, headers={"content-type": "application/json"})
    else:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # chunked: no Content-Length
        r = client.post(url_for(), content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    port.assert_untouched()


def asgi_scope(url: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a POST of ``url``'s query to the receiver (for driving the app by hand)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/callback",
        "raw_path": b"/callback",
        "root_path": "",
        "query_string": urlsplit(url).query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }


def test_lying_content_length_is_still_counted(port: FakePort) -> None:
    """A small Content-Length with a larger stream is caught while reading."""
    import asyncio

    app = create_app(port)
    body = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    scope = asgi_scope(url_for(), [(b"content-type", b"application/json"), (b"content-length", b"10")])
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    port.assert_untouched()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"task_id": "job-1"', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"task_id": "job-1", "x": NaN}', "not valid JSON"),
        (b'[{"task_id": "job-1"}]', "JSON object"),
        (b'"job-1"', "JSON object"),
        (b'{"success": true}', "no task_id"),
        (b'{"task_id": 12}', "no task_id"),
        (b'{"task_id": "' + b"j" * 300 + b'"}', "no task_id"),
        (b'{"task_id": "job-1", "data": "not-a-list"}', "not a Veo result"),
    ],
)
def test_malformed_body_is_400(client: TestClient, port: FakePort, body: bytes, reason: str) -> None:
    r = client.post(url_for(), content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert reason in r.json()["detail"]
    port.assert_untouched()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: TestClient, port: FakePort, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(url_for(), content=b'{"task_id": "job-1"}', headers=headers)
    assert r.status_code == 415
    port.assert_untouched()


def test_json_content_type_with_charset_is_accepted(client: TestClient, port: FakePort) -> None:
    r = client.post(
        url_for(), content=b'{"task_id": "job-1"}', headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert r.status_code == 200


def test_unknown_task_instance_is_404(client: TestClient, port: FakePort) -> None:
    r = client.post(url_for(task_id="not_a_task"), json=SUCCESS)
    assert r.status_code == 404
    port.assert_untouched()


def test_stale_submission_key_is_404(client: TestClient, port: FakePort) -> None:
    r = client.post(url_for(submission_key="cd" * 16), json=SUCCESS)  # an earlier try's key
    assert r.status_code == 404
    port.assert_untouched()


def test_no_ledger_is_404(client: TestClient, port: FakePort) -> None:
    del port.tis[TI_KEY]["store"][LEDGER_KEY]
    r = client.post(url_for(), json=SUCCESS)
    assert r.status_code == 404
    port.assert_untouched()


def test_task_id_not_of_this_submission_is_409(client: TestClient, port: FakePort) -> None:
    r = client.post(url_for(), json={**SUCCESS, "task_id": "job-someone-else"})
    assert r.status_code == 409
    port.assert_untouched()


def test_rotation_previous_secret_accepted_then_removed(client: TestClient, port: FakePort) -> None:
    url = url_for(secret=OLD_SECRET)
    port.secrets["veo_default"] = [SECRET, OLD_SECRET]
    assert client.post(url, json=RUNNING).status_code == 200
    port.secrets["veo_default"] = [SECRET]
    assert client.post(url, json=SUCCESS).status_code == 403
    assert len(port.stores) == 1


def test_unsigned_request_never_looks_up_secrets(port: FakePort) -> None:
    calls: list[str] = []

    def secrets_for(conn_id: str) -> list[str]:
        calls.append(conn_id)
        return []

    port.secrets_for = secrets_for  # type: ignore[method-assign]
    r = TestClient(create_app(port)).post("/callback?conn_id=veo_default", json=SUCCESS)
    assert r.status_code == 403 and calls == []


def test_port_failure_is_500_without_details(port: FakePort) -> None:
    def boom(target: CallbackTarget) -> None:
        raise RuntimeError("database is down: secret stuff")

    port.load = boom  # type: ignore[method-assign,assignment]
    r = TestClient(create_app(port)).post(url_for(), json=SUCCESS)
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}
    port.assert_untouched()


# -------------------------------------------------------------------------- valid callbacks


def test_a_callback_for_a_job_the_ledger_names_resumes_with_a_wake_up_and_stores_nothing(
    client: TestClient, port: FakePort
) -> None:
    """It used to be stored too (one more database write): nothing reads it once the task is woken."""
    r = client.post(url_for(), json=SUCCESS)
    assert r.status_code == 200 and r.json() == {"status": "resumed", "resumed": True}
    assert port.transactions == 1 and port.stores == []
    [(target, payload)] = port.resumes
    assert target == make_target(expires_at=target.expires_at)
    event = VeoEvent.read(payload)
    assert (event.status, event.source, event.veo_task_id, event.submission_key) == (
        "callback",
        "callback",
        "job-1",
        KEY,
    )
    assert event.result is None and event.error_message is None


def test_forged_failure_text_never_reaches_the_task(client: TestClient, port: FakePort) -> None:
    """A failure callback used to fail the task for good, with the sender's text in its log."""
    assert client.post(url_for(), json=FAILURE).json() == {"status": "resumed", "resumed": True}
    payload = port.resumes[0][1]
    assert VeoEvent.read(payload).status == "callback"
    assert "content moderation" not in str(payload) and "forbidden" not in str(payload)


def test_a_callback_that_comes_before_the_deferral_is_kept_for_the_operator(client: TestClient, port: FakePort) -> None:
    """The operator looks for it before it defers: a stored claim of "done" makes it read the job at once."""
    port.tis[TI_KEY]["state"] = "running"
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": False}
    [(target, value)] = port.stores
    assert target == make_target(expires_at=target.expires_at)
    assert value["key"] == KEY and value["task_id"] == "job-1" and value["claimed_state"] == "succeeded"
    assert "body" not in value and "https://cdn.example/v.mp4" not in str(value)
    assert value["received_at"].endswith("+00:00")


def test_a_callback_is_stored_when_the_port_refuses_to_resume(client: TestClient, port: FakePort) -> None:
    """The port re-checks the locked row; a task it does not resume keeps the callback like any other."""
    port.resume = lambda target, payload: False  # type: ignore[method-assign,assignment,misc]
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": False}
    assert len(port.stores) == 1


def test_running_callback_is_stored_but_does_not_resume(client: TestClient, port: FakePort) -> None:
    assert client.post(url_for(), json=RUNNING).json() == {"status": "stored", "resumed": False}
    assert len(port.stores) == 1 and port.resumes == []
    assert port.tis[TI_KEY]["state"] == "deferred"


def test_a_lost_submissions_callback_is_stored_but_never_written_into_the_ledger(
    client: TestClient, port: FakePort
) -> None:
    """Reconciliation used to write the body's task_id into the ledger unverified (the worker now checks)."""
    ledger = {"state": "submitting", "key": KEY, "task_id": None, "endpoint": "videos", "conn_id": "veo_default"}
    port.add_ti(state="failed", ledger=ledger, trigger_key=None)
    r = client.post(url_for(), json={**SUCCESS, "task_id": "job-of-someone-else"})
    assert r.json() == {"status": "stored", "resumed": False}
    assert port.tis[TI_KEY]["store"][LEDGER_KEY] == ledger
    assert port.tis[TI_KEY]["store"][STORED_CALLBACK_KEY]["task_id"] == "job-of-someone-else"


@pytest.mark.parametrize("state", ["running", "queued", "up_for_retry", "success", None])
def test_not_deferred_task_is_stored_not_resumed(client: TestClient, port: FakePort, state: str | None) -> None:
    port.tis[TI_KEY]["state"] = state
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": False}
    assert port.resumes == [] and len(port.stores) == 1


def test_task_deferred_on_another_key_is_not_resumed(client: TestClient, port: FakePort) -> None:
    port.add_ti(trigger_key="cd" * 16)
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": False}
    assert port.resumes == []


def test_task_deferred_on_another_trigger_is_not_resumed(client: TestClient, port: FakePort) -> None:
    port.tis[TI_KEY]["trigger"] = ("airflow.triggers.temporal.DateTimeTrigger", {"submission_key": KEY})
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": False}
    assert port.resumes == []


def test_mapped_task_instance_is_addressed_by_map_index(client: TestClient, port: FakePort) -> None:
    port.add_ti(("videos", "manual__1", "make_video", 3))
    assert client.post(url_for(map_index=3), json=SUCCESS).json()["resumed"] is True
    assert port.resumes[0][0].map_index == 3


# ------------------------------------------------------------------------------------- logs


def test_signature_and_query_never_reach_the_logs(
    client: TestClient, port: FakePort, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = url_for()
    bad = tamper(good, task_id="other")
    client.post(good, json=SUCCESS)
    client.post(good, json=SUCCESS)  # duplicate
    client.post(bad, json=SUCCESS)
    client.post(url_for(expires_at=int(time.time()) - 5), json=SUCCESS)
    client.post(good, content=b"[]", headers={"content-type": "application/json"})
    client.post(good, content=b"x", headers={"content-type": "text/plain"})
    ours = [r for r in caplog.records if r.name.startswith("veo_provider")]  # not the test client's own log
    text = " ".join(r.getMessage() + str(r.args) for r in ours)
    assert ours, "the receiver logs its outcomes"
    for url in (good, bad):
        assert sig_of(url) not in text
    assert SIGNATURE_PARAM not in text and "exp=" not in text and KEY not in text
    assert "'videos'/'manual__1'/'make_video'/'-1'" in text


def test_a_task_deferred_a_moment_ago_is_left_to_its_triggers_early_check(port: FakePort) -> None:
    """Airflow fails a task resumed before its deferral's executor event was processed (RESUME_HOLD):
    a young deferral is not resumed by the callback; its trigger checks the API at RESUME_HOLD."""
    port.add_ti(deferred_seconds=RESUME_HOLD - 5)
    start = time.monotonic()
    r = TestClient(create_app(port)).post(url_for(), json=SUCCESS)
    assert r.json() == {"status": "stored", "resumed": False}
    assert time.monotonic() - start < 2, "answered at once, the request is not held"
    assert not port.resumes and len(port.stores) == 1


def _lost_answer_ti(port: FakePort, deferred_seconds: float, ti_key: tuple[str, str, str, int] = TI_KEY) -> None:
    """A task whose submission answer was lost: its ledger and its trigger know no job."""
    ledger = {"state": "submitting", "key": KEY, "conn_id": "veo_default"}
    ti = port.add_ti(ti_key, deferred_seconds=deferred_seconds, ledger=ledger)
    ti["trigger"][1]["veo_task_id"] = None


def test_a_lost_submissions_callback_is_stored_even_when_it_resumes_the_task(
    client: TestClient, port: FakePort
) -> None:
    """Its ledger names no job: the woken task learns the job from the stored callback (then asks the API)."""
    _lost_answer_ti(port, RESUME_HOLD + 5)
    assert client.post(url_for(), json=SUCCESS).json() == {"status": "stored", "resumed": True}
    assert len(port.stores) == 1 and len(port.resumes) == 1
    assert port.tis[TI_KEY]["store"][STORED_CALLBACK_KEY]["task_id"] == "job-1"


def test_a_just_deferred_lost_submission_is_resumed_once_the_hold_is_over(port: FakePort) -> None:
    """Its trigger has no job to check, so only the callback can resume it: after a short wait."""
    _lost_answer_ti(port, RESUME_HOLD - 0.6)
    start = time.monotonic()
    r = TestClient(create_app(port)).post(url_for(), json=SUCCESS)
    assert r.json() == {"status": "stored", "resumed": True}
    assert time.monotonic() - start >= 0.55


def test_a_lost_submissions_callback_is_held_no_longer_than_a_caller_waits(port: FakePort) -> None:
    _lost_answer_ti(port, 0.5)
    start = time.monotonic()
    r = TestClient(create_app(port)).post(url_for(), json=SUCCESS)
    assert r.json() == {"status": "stored", "resumed": True}
    assert LOST_ANSWER_WAIT - 0.1 <= time.monotonic() - start < LOST_ANSWER_WAIT + 2


async def test_waiting_for_a_just_deferred_task_holds_no_thread(port: FakePort) -> None:
    """The wait used to be a time.sleep in the api-server's shared thread pool (40 threads by default)."""
    import anyio.to_thread
    import httpx

    anyio.to_thread.current_default_thread_limiter().total_tokens = 1  # this test's loop only
    _lost_answer_ti(port, RESUME_HOLD - 1)  # resumed only after ~1 s
    port.add_ti(("videos", "manual__1", "other", -1))
    transport = httpx.ASGITransport(app=create_app(port))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        slow = asyncio.create_task(client.post(url_for(), json=SUCCESS))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        fast = await client.post(url_for(task_id="other"), json=SUCCESS)
        assert fast.json() == {"status": "resumed", "resumed": True}
        assert time.monotonic() - start < 0.5 and not slow.done(), "served while the other one waits"
        assert (await slow).json() == {"status": "stored", "resumed": True}
