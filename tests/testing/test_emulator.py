"""Contract tests of the Veo API emulator: the vendor's shapes, modes, faults and counters.

The hook's own tests trust the emulator to behave like the vendor's API; these tests are what
that trust rests on. They run against a real uvicorn server (``veo_emulator`` fixture) where
connection behaviour matters, and against FastAPI's TestClient where it does not.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from typing import Any

import httpx
import pytest

from veo_provider.models import TaskState, decide_state
from veo_provider.testing.emulator import (
    CallbackRecorder,
    EmulatorConfig,
    VeoEmulator,
    body_key,
    create_app,
    iter_mp4,
    mp4_length,
    sample_mp4,
)

with warnings.catch_warnings():
    # Starlette's TestClient warns about httpx (its own transport); only the in-process checks use it.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

DOC_BODY = {
    "action": "text2video",
    "model": "veo2",
    "prompt": "White ceramic coffee mug on glossy marble countertop with morning window light. "
    "Camera slowly rotates 360 degrees around the mug, pausing briefly at the handle.",
}
DOC_HEADERS = {
    "accept": "application/json",
    "authorization": "Bearer test-token",
    "content-type": "application/json",
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def api(emu: VeoEmulator, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=emu.url, headers=DOC_HEADERS, timeout=timeout)


def body(prompt: str = "a red fox in the snow", **extra: Any) -> dict[str, Any]:
    return {"action": "text2video", "model": "veo3", "prompt": prompt, **extra}


def task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    r = client.post("/veo/tasks", json={"id": task_id, "action": "retrieve"})
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    data = r.json()
    assert data["success"] is False
    assert data["error"]["code"] == code
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    assert UUID.match(data["trace_id"])
    return data


@pytest.fixture
def client(veo_emulator: VeoEmulator) -> httpx.Client:
    with api(veo_emulator) as c:
        yield c


@pytest.fixture
def test_client() -> TestClient:
    """In-process client (no server) for checks where the connection does not matter."""
    return TestClient(create_app(EmulatorConfig(generation_seconds=0)), headers=DOC_HEADERS)


# --------------------------------------------------------------------------- vendor shapes


def test_doc_curl_example_gets_doc_shape(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.post("/veo/videos", json=DOC_BODY)
    held = time.monotonic() - started

    assert r.status_code == 200
    data = r.json()
    assert set(data) == {"success", "task_id", "trace_id", "data"}
    assert data["success"] is True
    assert UUID.match(data["task_id"]) and UUID.match(data["trace_id"])
    assert isinstance(data["data"], list) and len(data["data"]) == 1
    item = data["data"][0]
    assert set(item) == {"id", "video_url", "created_at", "complete_at", "state"}
    assert re.match(r"^[0-9a-f]{32}$", item["id"])
    assert item["video_url"] == f"{veo_emulator.url}/_emulator/videos/{data['task_id']}.mp4"
    assert DATE.match(item["created_at"]) and DATE.match(item["complete_at"])
    assert item["complete_at"] >= item["created_at"]
    assert item["state"] == "succeeded"
    # Synchronous mode holds the request until the job is done.
    assert held >= 0.2 * 0.9
    assert decide_state(data).state is TaskState.SUCCEEDED


@pytest.mark.parametrize("action", ["get1080p", "get_1080p"])
def test_1080p_fetch_of_known_video(test_client: TestClient, action: str) -> None:
    first = test_client.post("/veo/videos", json=body()).json()
    video_id = first["data"][0]["id"]

    r = test_client.post("/veo/videos", json={"action": action, "video_id": video_id})

    assert r.status_code == 200
    again = r.json()
    assert again["task_id"] != first["task_id"]
    assert again["data"][0]["id"] == video_id  # as in the vendor's example
    assert again["data"][0]["video_url"].endswith(f"/{again['task_id']}.mp4")


def test_editing_endpoints_and_extend_restriction(test_client: TestClient) -> None:
    video_id = test_client.post("/veo/videos", json=body()).json()["data"][0]["id"]
    for path, payload in [
        ("/veo/upsample", {"video_id": video_id, "action": "4k"}),
        ("/veo/reshoot", {"video_id": video_id, "motion_type": "UP"}),
        ("/veo/objects", {"video_id": video_id, "action": "insert", "prompt": "a cat"}),
    ]:
        r = test_client.post(path, json=payload)
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True

    extended = test_client.post("/veo/extend", json={"video_id": video_id, "prompt": "more"}).json()
    ext_id = extended["data"][0]["id"]
    assert ext_id != video_id
    r = test_client.post("/veo/reshoot", json={"video_id": ext_id, "motion_type": "UP"})
    assert "extend" in assert_error(r, 400, "bad_request")["error"]["message"]
    r = test_client.post("/veo/objects", json={"video_id": ext_id, "action": "insert", "prompt": "x"})
    assert_error(r, 400, "bad_request")


# ------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer wrong-token"},
        {},
        {"authorization": "test-token"},
        {"authorization": "Basic test-token"},
    ],
    ids=["wrong", "missing", "no-scheme", "basic"],
)
def test_bad_token_is_401(veo_emulator: VeoEmulator, headers: dict[str, str]) -> None:
    r = httpx.post(f"{veo_emulator.url}/veo/videos", json=DOC_BODY, headers=headers)
    assert_error(r, 401, "invalid_token")
    r = httpx.post(f"{veo_emulator.url}/veo/tasks", json={"id": "x"}, headers=headers)
    assert_error(r, 401, "invalid_token")
    assert veo_emulator.jobs_created == 0


def test_list_of_tokens() -> None:
    app = create_app(EmulatorConfig(token=["a", "b"], generation_seconds=0))
    c = TestClient(app)
    for token in ("a", "b"):
        r = c.post("/veo/videos", json=body(), headers={"authorization": f"bearer {token}"})
        assert r.status_code == 200
    r = c.post("/veo/videos", json=body(), headers={"authorization": "Bearer test-token"})
    assert r.status_code == 401


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"action": "text2video", "model": "veo2"}, "needs a prompt"),
        ({"action": "image2video", "prompt": "dance"}, "image2video needs 1 or 2 image_urls (got 0)"),
        (
            {"action": "image2video", "prompt": "dance", "image_urls": [f"https://x.test/{i}.png" for i in range(3)]},
            "image2video needs 1 or 2 image_urls (got 3)",
        ),
        ({"action": "get1080p"}, "get1080p needs video_id"),
        ({"action": "get_1080p"}, "get1080p needs video_id"),
        ({"action": "get1080p", "video_id": "0" * 32}, "is not a finished video"),
        ({"action": "text2video", "prompt": "x", "model": "a model"}, "is not a model name"),
        ({"action": "dance"}, "is not a /veo/videos action"),
        ({"prompt": "x"}, "action is required"),
        ({"action": "text2video", "prompt": "x", "callback_url": "ftp://x"}, "callback_url must be an http"),
    ],
)
def test_invalid_bodies_are_400(test_client: TestClient, payload: dict[str, Any], expected: str) -> None:
    r = test_client.post("/veo/videos", json=payload)
    assert r.status_code == 400, r.text
    data = r.json()
    assert data["error"]["code"] == "bad_request"
    assert expected in data["error"]["message"]
    assert test_client.app.state.emulator.jobs_created == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"'])
def test_non_object_bodies_are_400(test_client: TestClient, raw: bytes) -> None:
    assert_error(test_client.post("/veo/videos", content=raw), 400, "bad_request")  # type: ignore[arg-type]
    assert_error(test_client.post("/veo/tasks", content=raw), 400, "bad_request")  # type: ignore[arg-type]


def test_other_endpoints_validate(test_client: TestClient) -> None:
    assert_error(test_client.post("/veo/upsample", json={"action": "8k", "video_id": "v"}), 400, "bad_request")
    assert_error(test_client.post("/veo/reshoot", json={"video_id": "v", "motion_type": "SPIN"}), 400, "bad_request")
    assert_error(test_client.post("/veo/objects", json={"video_id": "v", "action": "remove"}), 400, "bad_request")
    assert_error(test_client.post("/veo/extend", json={}), 400, "bad_request")


def test_strict_video_ids() -> None:
    c = TestClient(create_app(EmulatorConfig(generation_seconds=0, strict_video_ids=True)), headers=DOC_HEADERS)
    r = c.post("/veo/upsample", json={"video_id": "unknown"})
    assert_error(r, 400, "bad_request")


def test_unknown_paths_are_no_api(test_client: TestClient) -> None:
    assert_error(test_client.post("/veo/unknown", json={}), 404, "no_api")
    assert_error(test_client.get("/veo/videos"), 404, "no_api")
    assert_error(test_client.get("/"), 404, "no_api")
    assert_error(test_client.get("/docs"), 404, "no_api")


# ------------------------------------------------------------------------------ /veo/tasks


@pytest.mark.veo_emulator(generation_seconds=0.6, pending_fraction=1 / 3)
def test_async_mode_and_task_lifecycle(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    payload = body(**{"async": True})
    started = time.monotonic()
    r = client.post("/veo/videos", json=payload)
    assert time.monotonic() - started < 0.3
    assert r.status_code == 200
    assert r.json() == {"task_id": r.json()["task_id"]}
    task_id = r.json()["task_id"]

    seen: list[str] = []
    records: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 3
    polls = 0
    while time.monotonic() < deadline:
        rec = task(client, task_id)
        polls += 1
        state = decide_state(rec).state.value
        if not seen or seen[-1] != state:
            seen.append(state)
            records[state] = rec
        if state == "succeeded":
            break
        time.sleep(0.03)

    assert seen == ["pending", "running", "succeeded"]
    pending, running, done = records["pending"], records["running"], records["succeeded"]
    assert "response" not in pending and "finished_at" not in pending and "elapsed" not in pending
    assert set(pending) == {"id", "trace_id", "type", "created_at", "started_at", "request"}
    assert pending["id"] == task_id and pending["type"] == "videos"
    assert pending["request"] == payload
    assert isinstance(pending["created_at"], float) and isinstance(pending["started_at"], float)
    item = running["response"]["data"][0]
    assert running["response"]["success"] is True and item["state"] == "running"
    assert "video_url" not in item
    assert done["response"]["data"][0]["state"] == "succeeded"
    assert done["elapsed"] == pytest.approx(0.6, abs=0.01)
    assert done["finished_at"] == pytest.approx(done["created_at"] + 0.6, abs=0.01)
    assert done["response"]["task_id"] == task_id and done["trace_id"] == done["response"]["trace_id"]
    assert veo_emulator.stats()["requests_per_path"]["/veo/tasks"] == polls


def test_tasks_batch_unknown_and_bad(test_client: TestClient) -> None:
    ids = [test_client.post("/veo/videos", json=body(f"p{i}")).json()["task_id"] for i in range(2)]

    r = test_client.post("/veo/tasks", json={"ids": [ids[0], "nope", ids[1]], "action": "retrieve_batch"})
    assert r.status_code == 200
    batch = r.json()
    assert batch["count"] == 2 and [i["id"] for i in batch["items"]] == ids

    r = test_client.post("/veo/tasks", json={"id": ids[0]})  # action defaults to retrieve
    assert r.status_code == 200 and r.json()["id"] == ids[0]
    assert_error(test_client.post("/veo/tasks", json={"id": "nope", "action": "retrieve"}), 404, "not_found")
    assert_error(test_client.post("/veo/tasks", json={"action": "retrieve"}), 400, "bad_request")
    assert_error(test_client.post("/veo/tasks", json={"action": "retrieve_batch", "ids": "x"}), 400, "bad_request")
    assert_error(test_client.post("/veo/tasks", json={"id": ids[0], "action": "delete"}), 400, "bad_request")


# ------------------------------------------------------------------------------- callbacks


def test_callback_success(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    url = f"{veo_callback_recorder.url}/veo/callback/abc?key=1"
    started = time.monotonic()
    r = client.post("/veo/videos", json=body(callback_url=url))
    assert time.monotonic() - started < 0.2
    assert set(r.json()) == {"task_id"}
    task_id = r.json()["task_id"]

    got = veo_callback_recorder.wait_for(1, timeout=3)
    assert len(got) == 1
    assert got[0].path == "/veo/callback/abc?key=1"
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].json == task(client, task_id)["response"]
    assert got[0].json["task_id"] == task_id and got[0].json["success"] is True
    assert veo_emulator.wait_until(lambda: veo_emulator.stats()["callbacks_delivered"] == 1)
    assert veo_emulator.jobs[0].mode == "callback"


def test_async_with_callback(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    r = client.post("/veo/videos", json=body(callback_url=veo_callback_recorder.url, **{"async": True}))
    assert set(r.json()) == {"task_id"}
    assert veo_callback_recorder.wait_for(1, timeout=3)[0].json["task_id"] == r.json()["task_id"]


def test_failure_callback(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    veo_emulator.set_faults(fail_jobs={"times": 1, "code": "generation_failed", "message": "model said no"})
    task_id = client.post("/veo/videos", json=body(callback_url=veo_callback_recorder.url)).json()["task_id"]

    cb = veo_callback_recorder.wait_for(1, timeout=3)[0].json
    assert cb == {
        "success": False,
        "task_id": task_id,
        "trace_id": cb["trace_id"],
        "error": {"code": "generation_failed", "message": "model said no"},
    }
    rec = task(client, task_id)
    assert rec["response"] == cb
    status = decide_state(rec)
    assert status.state is TaskState.FAILED and status.error_message == "model said no"


def test_callback_lost(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    veo_emulator.set_faults(callback_lose=1)
    lost = client.post("/veo/videos", json=body("one", callback_url=veo_callback_recorder.url)).json()["task_id"]
    kept = client.post("/veo/videos", json=body("two", callback_url=veo_callback_recorder.url)).json()["task_id"]

    got = veo_callback_recorder.wait_for(1, timeout=3)
    assert veo_emulator.wait_until(lambda: veo_emulator.stats()["callbacks_lost"] == 1)
    time.sleep(0.1)
    assert [c.json["task_id"] for c in veo_callback_recorder.received] == [kept] == [g.json["task_id"] for g in got]
    assert decide_state(task(client, lost)).state is TaskState.SUCCEEDED  # polling still finds it


def test_callback_duplicated(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    veo_emulator.set_faults(callback_duplicate={"times": 1, "copies": 2})
    client.post("/veo/videos", json=body(callback_url=veo_callback_recorder.url))

    got = veo_callback_recorder.wait_for(2, timeout=3)
    assert len(got) == 2 and got[0].raw == got[1].raw
    assert veo_emulator.wait_until(lambda: veo_emulator.stats()["callbacks_delivered"] == 2)


def test_callback_late(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    veo_emulator.set_faults(callback_delay={"seconds": 0.5})
    task_id = client.post("/veo/videos", json=body(callback_url=veo_callback_recorder.url)).json()["task_id"]
    job = veo_emulator.jobs[0]

    time.sleep(job.remaining() + 0.05)
    assert decide_state(task(client, task_id)).state is TaskState.SUCCEEDED
    assert veo_callback_recorder.received == []
    got = veo_callback_recorder.wait_for(1, timeout=2)
    assert got[0].received_at - job.finished_at >= 0.5


@pytest.mark.veo_emulator(callback_retries=2, callback_retry_delay=0.05)
def test_callback_receiver_failing_is_retried_and_counted(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    with CallbackRecorder(status=503) as sink:
        client.post("/veo/videos", json=body(callback_url=sink.url))
        assert len(sink.wait_for(3, timeout=3)) == 3
        assert veo_emulator.wait_until(lambda: veo_emulator.stats()["callbacks_failed"] == 3)
    stats = veo_emulator.stats()
    assert stats["callbacks_attempted"] == 3 and stats["callbacks_delivered"] == 0
    assert [c["status"] for c in stats["callbacks"]] == [503, 503, 503]


# ---------------------------------------------------------------------------------- faults


def test_rate_limit_on_one_path_via_http(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    r = httpx.post(
        f"{veo_emulator.url}/_emulator/faults",
        json={"rate_limit": {"times": 2, "retry_after": 3, "path": "/veo/tasks"}},
    )
    assert r.status_code == 200 and r.json()["faults"]["rate_limit"]["times"] == 2

    task_id = client.post("/veo/videos", json=body()).json()["task_id"]  # other path: not limited
    for _ in range(2):
        r = client.post("/veo/tasks", json={"id": task_id})
        assert_error(r, 429, "too_many_requests")
        assert r.headers["retry-after"] == "3"
    assert client.post("/veo/tasks", json={"id": task_id}).status_code == 200

    stats = httpx.get(f"{veo_emulator.url}/_emulator/stats").json()
    assert stats["faults_triggered"] == {"rate_limit": 2}
    assert "rate_limit" not in stats["faults"]  # used up
    assert stats["responses_per_path"]["/veo/tasks"] == {"429": 2, "200": 1}


def test_persistent_fault_until_cleared(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(rate_limit={"times": None})
    for _ in range(3):
        assert client.post("/veo/videos", json=body()).status_code == 429
    veo_emulator.set_faults(rate_limit=None)
    assert client.post("/veo/videos", json=body()).status_code == 200
    assert veo_emulator.jobs_created == 1


@pytest.mark.parametrize(
    ("fault", "status", "code"), [("server_error", 500, "api_error"), ("gateway_timeout", 504, "timeout")]
)
def test_5xx_before_the_job(
    veo_emulator: VeoEmulator, client: httpx.Client, fault: str, status: int, code: str
) -> None:
    veo_emulator.set_faults({fault: 1})
    assert_error(client.post("/veo/videos", json=body()), status, code)
    assert veo_emulator.jobs_created == 0
    assert client.post("/veo/videos", json=body()).status_code == 200
    assert veo_emulator.jobs_created == 1


@pytest.mark.parametrize(
    ("fault", "status", "code"), [("server_error", 500, "api_error"), ("gateway_timeout", 504, "timeout")]
)
def test_5xx_after_the_job_exists(
    veo_emulator: VeoEmulator, client: httpx.Client, fault: str, status: int, code: str
) -> None:
    veo_emulator.set_faults({fault: {"after_create": True}})
    assert_error(client.post("/veo/videos", json=body()), status, code)
    assert veo_emulator.jobs_created == 1


@pytest.mark.veo_emulator(generation_seconds=0)
def test_slow_answer_after_job_created_times_out_client(veo_emulator: VeoEmulator) -> None:
    veo_emulator.set_faults(slow_response={"seconds": 0.6, "path": "videos"})
    with api(veo_emulator, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/veo/videos", json=body())
    assert veo_emulator.jobs_created == 1  # the read timed out AFTER the job existed
    with api(veo_emulator) as c:
        assert c.post("/veo/tasks", json={"id": veo_emulator.jobs[0].task_id}).status_code == 200


@pytest.mark.veo_emulator(generation_seconds=0)
def test_slow_before_anything_abandons_request(veo_emulator: VeoEmulator) -> None:
    veo_emulator.set_faults(slow_response={"seconds": 0.3, "before": True})
    with api(veo_emulator, timeout=0.1) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/veo/videos", json=body())
    assert veo_emulator.wait_until(lambda: veo_emulator.stats()["requests_abandoned"] == 1, timeout=2)
    assert veo_emulator.jobs_created == 0


def test_slow_answer_client_waiting(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(slow_response={"seconds": 0.3, "path": "tasks"})
    task_id = client.post("/veo/videos", json=body(**{"async": True})).json()["task_id"]
    started = time.monotonic()
    assert client.post("/veo/tasks", json={"id": task_id}).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_drop_response_after_creating_job(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(drop_response={"path": "/veo/videos"})
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/veo/videos", json=body())
    assert veo_emulator.jobs_created == 1
    assert veo_emulator.stats()["responses_dropped"] == 1
    time.sleep(veo_emulator.jobs[0].remaining())  # the job goes on without its client
    assert decide_state(task(client, veo_emulator.jobs[0].task_id)).state is TaskState.SUCCEEDED


def test_failed_job_sync_answer(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(fail_jobs=1)
    r = client.post("/veo/videos", json=body())
    assert r.status_code == 200
    data = r.json()
    assert data["success"] is False and data["error"]["code"] == "generation_failed"
    assert set(data) == {"success", "task_id", "trace_id", "error"}

    veo_emulator.set_faults(fail_jobs={"http_status": 500, "code": "api_error", "message": "upstream broke"})
    r = client.post("/veo/videos", json=body("other"))
    assert r.status_code == 500 and r.json()["error"] == {"code": "api_error", "message": "upstream broke"}
    assert client.post("/veo/videos", json=body("third")).json()["success"] is True


def test_moderation_refusal(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(moderation=["violence"])
    assert_error(client.post("/veo/videos", json=body("Some VIOLENCE here")), 403, "forbidden")
    assert_error(client.post("/veo/videos", json=body("more violence")), 403, "forbidden")  # persistent
    assert client.post("/veo/videos", json=body("a calm lake")).status_code == 200
    assert veo_emulator.jobs_created == 1


def test_used_up(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(used_up=1)
    assert_error(client.post("/veo/videos", json=body()), 403, "used_up")
    assert client.post("/veo/videos", json=body()).status_code == 200


def test_generation_seconds_override(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    veo_emulator.set_faults(generation_seconds=0)
    started = time.monotonic()
    assert client.post("/veo/videos", json=body()).status_code == 200
    assert time.monotonic() - started < 0.15


# -------------------------------------------------------------------------------- counting


def test_jobs_per_body_ignores_delivery_fields(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    same = body("the same prompt")
    client.post("/veo/videos", json=same)
    client.post("/veo/videos", json={**same, "async": True})
    client.post("/veo/videos", json={**same, "callback_url": f"{veo_callback_recorder.url}/a"})
    client.post("/veo/videos", json={**same, "callback_url": f"{veo_callback_recorder.url}/b"})
    client.post("/veo/videos", json=body("another prompt"))

    assert veo_emulator.jobs_created == 5
    assert veo_emulator.jobs_for_body(same) == 4
    assert veo_emulator.jobs_for_body({**same, "callback_url": "http://elsewhere"}) == 4
    assert veo_emulator.max_jobs_per_body == 4
    stats = httpx.get(f"{veo_emulator.url}/_emulator/stats").json()
    assert stats["jobs_per_body"][body_key("/veo/videos", same)] == 4
    assert stats["max_jobs_per_body"] == 4 and stats["jobs_created"] == 5
    assert stats["requests_per_path"] == {"/veo/videos": 5}


def test_admin_endpoints(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    admin = httpx.Client(base_url=f"{veo_emulator.url}/_emulator")
    admin.post("/faults", json={"rate_limit": {"times": 5}})
    r = admin.post("/faults", json={"server_error": 2, "video_size": 4096})
    assert set(r.json()["faults"]) == {"rate_limit", "server_error", "video_size"}  # merged
    assert admin.get("/faults").json()["faults"]["server_error"]["times"] == 2
    assert veo_emulator.state.faults.rate_limit is not None  # same state in-process
    assert_error(admin.post("/faults", json={"no_such_fault": 1}), 400, "bad_request")
    assert_error(admin.post("/faults", json={"rate_limit": {"times": -1}}), 400, "bad_request")

    admin.post("/faults", json={"rate_limit": None, "server_error": None})
    task_id = client.post("/veo/videos", json=body()).json()["task_id"]
    jobs = admin.get("/jobs").json()
    assert jobs["count"] == 1 and jobs["items"][0]["task_id"] == task_id
    assert jobs["items"][0]["state"] == "succeeded" and jobs["items"][0]["mode"] == "sync"

    assert admin.post("/reset").status_code == 200
    stats = admin.get("/stats").json()
    assert stats["jobs_created"] == 0 and stats["faults"] == {} and stats["requests_per_path"] == {}
    assert admin.get("/jobs").json()["count"] == 0
    assert_error(client.post("/veo/tasks", json={"id": task_id}), 404, "not_found")
    assert "token" not in stats["config"]


def test_reset_drops_pending_callbacks(
    veo_emulator: VeoEmulator, client: httpx.Client, veo_callback_recorder: CallbackRecorder
) -> None:
    client.post("/veo/videos", json=body(callback_url=veo_callback_recorder.url))
    veo_emulator.reset()
    time.sleep(0.35)
    assert veo_callback_recorder.received == []
    assert veo_emulator.stats()["callbacks"] == []


def test_initial_faults_come_back_on_reset() -> None:
    app = create_app(EmulatorConfig(generation_seconds=0, faults={"used_up": {"times": None}}))
    c = TestClient(app, headers=DOC_HEADERS)
    assert c.post("/veo/videos", json=body()).status_code == 403
    c.post("/_emulator/faults", json={"used_up": None})
    assert c.post("/veo/videos", json=body()).status_code == 200
    c.post("/_emulator/reset")
    assert c.post("/veo/videos", json=body()).status_code == 403


# ---------------------------------------------------------------------------------- videos


def boxes(data: bytes) -> list[tuple[bytes, int]]:
    """Top-level MP4 boxes (type, size) found in ``data``, which may be only a prefix."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        assert size >= 8, (pos, size)
        out.append((kind, size))
        pos += size
    return out


def test_sample_is_valid_mp4(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    url = client.post("/veo/videos", json=body()).json()["data"][0]["video_url"]
    r = httpx.get(url)  # no auth: CDN URLs are public
    sample = sample_mp4()
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content == sample and int(r.headers["content-length"]) == len(sample)
    assert r.content[4:8] == b"ftyp"
    found = boxes(r.content)
    assert found[0][0] == b"ftyp" and b"moov" in [k for k, _ in found]
    assert sum(s for _, s in found) == len(sample)

    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(sample)
    assert int(httpx.head(f"{url}?size=123456").headers["content-length"]) == 123456
    assert veo_emulator.stats()["downloads"] == 3


def test_large_download_is_streamed_and_valid(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    url = client.post("/veo/videos", json=body()).json()["data"][0]["video_url"]
    size = 32 * 1024 * 1024
    head, total, chunks = b"", 0, 0
    keep = len(sample_mp4()) + 16  # the clip and the header of the padding box
    tracemalloc.start()
    try:
        with httpx.stream("GET", f"{url}?size={size}") as r:
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == size
            for chunk in r.iter_raw():
                chunks += 1
                total += len(chunk)
                if len(head) < keep:
                    head += chunk[: keep - len(head)]
                elif chunk.count(0) != len(chunk):
                    pytest.fail("the padding of the free box must be zeros")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == size and chunks > 10
    assert peak < size // 8, f"peak {peak} bytes: the body was built in memory"
    found = boxes(head)
    assert found[0][0] == b"ftyp"
    assert found[-1] == (b"free", size - len(sample_mp4()))
    assert sum(s for _, s in found) == size  # ends exactly with the free box


def test_iter_mp4_is_lazy_and_handles_huge_sizes() -> None:
    sample = sample_mp4()
    huge = 10 * 1024**3  # > 4 GiB: needs the 64-bit box size
    gen = iter_mp4(sample, huge)
    assert inspect.isgenerator(gen)
    first = list(itertools.islice(gen, 3))
    assert first[0] == sample
    assert first[1] == struct.pack(">I4sQ", 1, b"free", huge - len(sample))
    assert len(first[2]) == 64 * 1024
    assert mp4_length(len(sample), huge) == huge
    # Too small for a box: the plain sample.
    assert mp4_length(len(sample), len(sample) + 7) == len(sample)
    assert b"".join(iter_mp4(sample, 10)) == sample
    exact = b"".join(iter_mp4(sample, len(sample) + 8))
    assert exact == sample + struct.pack(">I4s", 8, b"free")


def test_video_size_fault_and_bad_size(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    url = client.post("/veo/videos", json=body()).json()["data"][0]["video_url"]
    veo_emulator.set_faults(video_size=100_000)
    r = httpx.get(url)
    assert len(r.content) == 100_000 and boxes(r.content)[-1][0] == b"free"
    assert_error(httpx.get(f"{url}?size=-1"), 400, "bad_request")
    assert_error(httpx.get(f"{url}?size=big"), 400, "bad_request")


def test_download_cut_mid_body(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    url = client.post("/veo/videos", json=body()).json()["data"][0]["video_url"]
    veo_emulator.set_faults(download_cut={"times": 1, "after_bytes": 300_000})
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", f"{url}?size=1000000") as r:
        assert int(r.headers["content-length"]) == 1_000_000
        for chunk in r.iter_raw():
            received += len(chunk)
    assert received == 300_000
    assert veo_emulator.stats()["downloads_cut"] == 1
    assert len(httpx.get(f"{url}?size=1000000").content) == 1_000_000  # only the next K downloads


@pytest.mark.veo_emulator(generation_seconds=1)
def test_no_video_before_done_or_for_unknown_task(veo_emulator: VeoEmulator, client: httpx.Client) -> None:
    task_id = client.post("/veo/videos", json=body(**{"async": True})).json()["task_id"]
    assert_error(httpx.get(f"{veo_emulator.url}/_emulator/videos/{task_id}.mp4"), 404, "not_found")
    assert_error(httpx.get(f"{veo_emulator.url}/_emulator/videos/nope.mp4"), 404, "not_found")
    # The 1080p fetch of a video still being made is refused too.
    video_id = veo_emulator.jobs[0].video_id
    assert_error(client.post("/veo/videos", json={"action": "get1080p", "video_id": video_id}), 400, "bad_request")


# ------------------------------------------------------------------------- plugin and CLI


def test_plugin_defaults(veo_emulator: VeoEmulator) -> None:
    assert veo_emulator.config.generation_seconds == 0.2
    assert veo_emulator.url.startswith("http://127.0.0.1:")


@pytest.mark.veo_emulator(generation_seconds=0, token="other")
def test_plugin_marker(veo_emulator: VeoEmulator) -> None:
    assert veo_emulator.config.generation_seconds == 0
    r = httpx.post(f"{veo_emulator.url}/veo/videos", json=body(), headers={"authorization": "Bearer other"})
    assert r.status_code == 200


class TestConfigFixtureOverride:
    @pytest.fixture
    def veo_emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(generation_seconds=0.05, pending_fraction=0.5)

    def test_override(self, veo_emulator: VeoEmulator) -> None:
        assert veo_emulator.config.generation_seconds == 0.05
        assert veo_emulator.config.pending_fraction == 0.5


def test_connection_env(veo_connection_env: VeoEmulator) -> None:
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_VEO_DEFAULT"])
    assert conn == {"conn_type": "veo", "host": veo_connection_env.url, "password": "test-token"}


def test_plugin_and_emulator_import_cheaply() -> None:
    code = (
        "import sys, veo_provider.testing.pytest_plugin;"
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules, 'plugin too heavy';"
        "import veo_provider.testing.emulator as e; e.create_app();"
        "bad = [m for m in sys.modules if m.startswith(('airflow', 'veo_provider.hooks', 'veo_provider.exceptions'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_until_killed() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "veo_provider.testing.emulator", "--port", str(port), "--generation-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"Veo API emulator on http://127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(f"{base}/veo/videos", json=DOC_BODY, headers=DOC_HEADERS)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, "the emulator did not start"
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["data"][0]["state"] == "succeeded"
        assert r.json()["data"][0]["video_url"].startswith(base)
        httpx.post(f"{base}/_emulator/faults", json={"used_up": 1})
        assert httpx.post(f"{base}/veo/videos", json=DOC_BODY, headers=DOC_HEADERS).status_code == 403
        assert httpx.get(f"{base}/_emulator/stats").json()["jobs_created"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
