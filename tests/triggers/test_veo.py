"""VeoTrigger.run() driven directly: one event of each kind, transient errors, no secrets in kwargs."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support import SECRET_TOKEN
from veo_provider.testing import payloads
from veo_provider.testing.payloads import RUNNING, VIDEO_URL, record
from veo_provider.triggers.veo import VeoTrigger

DONE = record(payloads.DONE, trace_id="tr-1")
FAILED = {
    "id": "t-1",
    "response": {"success": False, "task_id": "t-1", "error": {"code": "forbidden", "message": "moderation"}},
}


def batch(*records: dict) -> httpx.Response:
    return httpx.Response(200, json={"items": list(records), "count": len(records)})


def trigger(**kw) -> VeoTrigger:
    args = {
        "conn_id": "veo_default",
        "veo_task_id": "t-1",
        "deadline": time.time() + 10,
        "poll_interval": 0.1,
        "first_check_at": 0,
    }
    return VeoTrigger(**{**args, **kw})


async def events(trig: VeoTrigger) -> list[dict]:
    return [e.payload async for e in trig.run()]


@pytest.fixture(autouse=True)
def _one_attempt_per_read(veo_conn):
    """The trigger's own loop retries; the hook's retries would only slow these tests down."""
    veo_conn(max_retries=1)


async def test_success_event_carries_the_parsed_result(api):
    route = api.post("/veo/tasks").mock(side_effect=[batch({"id": "t-1"}), batch(RUNNING), batch(DONE)])
    [event] = await events(trigger())
    assert event["status"] == "success"
    assert event["result"]["data"][0]["video_url"] == VIDEO_URL
    assert event["trace_id"] == "tr-1" and event["veo_task_id"] == "t-1"
    assert route.call_count == 3
    assert json.loads(route.calls.last.request.content) == {"ids": ["t-1"], "action": "retrieve_batch"}


async def test_failed_event_has_the_api_code_and_reason(api):
    api.post("/veo/tasks").mock(return_value=batch(FAILED))
    [event] = await events(trigger())
    assert (event["status"], event["error_code"], event["error_message"]) == ("failed", "forbidden", "moderation")


async def test_timeout_event_when_the_deadline_passes(api):
    api.post("/veo/tasks").mock(return_value=batch(RUNNING))
    start = time.monotonic()
    [event] = await events(trigger(deadline=time.time() + 0.5))
    assert event["status"] == "timeout" and event["last_state"] == "running"
    assert time.monotonic() - start < 2


async def test_a_deadline_already_past_times_out_without_any_request(api):
    route = api.post("/veo/tasks")
    [event] = await events(trigger(deadline=time.time() - 1))
    assert event["status"] == "timeout" and route.call_count == 0


async def test_transient_errors_within_the_deadline_do_not_fail(api):
    api.post("/veo/tasks").mock(
        side_effect=[
            httpx.Response(500, json={"error": {"code": "api_error"}}),
            httpx.Response(429, json={"error": {"code": "too_many_requests"}}),
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            batch(DONE),
        ]
    )
    [event] = await events(trigger())
    assert event["status"] == "success"


async def test_a_bad_token_ends_the_wait_with_an_error_event(api):
    api.post("/veo/tasks").mock(
        return_value=httpx.Response(401, json={"error": {"code": "invalid_token", "message": "bad"}})
    )
    [event] = await events(trigger())
    assert event["status"] == "error" and event["error_code"] == "invalid_token"
    assert SECRET_TOKEN not in json.dumps(event)


async def test_an_id_the_api_never_heard_of_ends_with_an_error(api):
    api.post("/veo/tasks").mock(
        side_effect=lambda request: (
            batch()
            if "ids" in json.loads(request.content)
            else httpx.Response(404, json={"error": {"code": "not_found", "message": "no such task"}})
        )
    )
    [event] = await events(trigger())
    assert event["status"] == "error" and event["error_code"] == "not_found"


async def test_first_check_waits_until_first_check_at(api):
    route = api.post("/veo/tasks").mock(return_value=batch(DONE))
    start = time.monotonic()
    await events(trigger(first_check_at=time.time() + 0.6))
    assert time.monotonic() - start >= 0.6 and route.call_count == 1


async def test_a_restarted_trigger_past_its_first_check_checks_at_once(api):
    route = api.post("/veo/tasks").mock(return_value=batch(DONE))
    start = time.monotonic()
    [event] = await events(trigger(first_check_at=time.time() - 60, poll_interval=30, wait_mode="callback"))
    assert event["status"] == "success" and time.monotonic() - start < 1 and route.call_count == 1


async def test_waiting_for_a_callback_without_a_task_id_never_polls(api):
    route = api.post("/veo/tasks")
    [event] = await events(trigger(veo_task_id=None, deadline=time.time() + 0.3, wait_mode="callback"))
    assert event["status"] == "timeout" and event["veo_task_id"] is None and route.call_count == 0


async def test_many_waiting_triggers_share_batched_requests(api):
    import asyncio

    def answer(request):
        ids = json.loads(request.content)["ids"]
        return batch(*[{**DONE, "id": i, "response": {**DONE["response"], "task_id": i}} for i in ids])

    route = api.post("/veo/tasks").mock(side_effect=answer)
    results = await asyncio.gather(*(events(trigger(veo_task_id=f"t-{i}")) for i in range(120)))
    assert all(r[0]["status"] == "success" for r in results)
    assert {r[0]["veo_task_id"] for r in results} == {f"t-{i}" for i in range(120)}
    assert route.call_count == 3, "120 waits in one tick = 3 batch calls of <= 50 ids"


def test_serialize_round_trips_and_holds_no_secret(veo_conn):
    trig = trigger(submission_key="k-1")
    path, kwargs = trig.serialize()
    assert path == "veo_provider.triggers.veo.VeoTrigger"
    assert VeoTrigger(**kwargs).serialize() == (path, kwargs)
    assert set(kwargs) == {
        "conn_id",
        "veo_task_id",
        "deadline",
        "poll_interval",
        "first_check_at",
        "submission_key",
        "wait_mode",
        "try_number",
    }
    json.dumps(kwargs)  # JSON-able only
    assert SECRET_TOKEN not in repr(trig) and SECRET_TOKEN not in json.dumps(kwargs)


async def test_every_event_names_the_try_that_deferred(api):
    api.post("/veo/tasks").mock(side_effect=[batch(DONE)])
    [event] = await events(trigger(try_number=3))
    assert event["status"] == "success" and event["deferred_in_try"] == 3
    api.post("/veo/tasks").mock(side_effect=[batch(RUNNING)] * 50)
    [late] = await events(trigger(try_number=4, deadline=0))
    assert late["status"] == "timeout" and late["deferred_in_try"] == 4


async def test_ids_asked_for_while_a_batch_is_in_flight_go_in_the_next_batch(api):
    import asyncio

    async def slow(request):
        await asyncio.sleep(0.5)
        ids = json.loads(request.content)["ids"]
        return batch(*[{**DONE, "id": i, "response": {**DONE["response"], "task_id": i}} for i in ids])

    route = api.post("/veo/tasks").mock(side_effect=slow)
    first = asyncio.ensure_future(events(trigger(veo_task_id="t-a")))
    await asyncio.sleep(0.35)  # t-a's batch is now in flight
    second = await asyncio.wait_for(events(trigger(veo_task_id="t-b")), timeout=5)
    assert second[0]["status"] == "success" and (await first)[0]["status"] == "success"
    assert route.call_count == 2


async def test_the_wait_logs_changes_and_progress_without_flooding(api, caplog, capsys, monkeypatch):
    import veo_provider.triggers.veo as module

    monkeypatch.setattr(module, "PROGRESS_EVERY", 1.0)
    answers = [batch(RUNNING)] * 8 + [batch(DONE)]
    api.post("/veo/tasks").mock(side_effect=answers)
    [event] = await events(trigger(poll_interval=0.1))
    assert event["status"] == "success"
    logged = caplog.text + capsys.readouterr().out
    lines = [line for line in logged.splitlines() if "Veo job t-1 is" in line]
    assert "is running after" in lines[0] and "next check in" in lines[0]
    assert 1 <= sum("is still running" in line for line in lines) <= 3, "progress, not one line per poll"
    assert "Waiting for Veo job t-1 (poll mode)" in logged


async def test_a_job_that_stays_running_is_polled_every_tick_without_waking_its_wait(api, monkeypatch):
    """1,000 waits in one triggerer: a wake-up per wait and tick is 1,000 coroutine steps a tick."""
    wakes = []
    check = VeoTrigger._check

    async def counting_check(self, *args):
        result = await check(self, *args)
        wakes.append(result[0].state.value if result[0] else None)
        return result

    monkeypatch.setattr(VeoTrigger, "_check", counting_check)
    route = api.post("/veo/tasks").mock(side_effect=[batch({"id": "t-1"})] + [batch(RUNNING)] * 6 + [batch(DONE)])
    [event] = await events(trigger(poll_interval=0.1))
    assert event["status"] == "success"
    assert route.call_count == 8, "the same requests as a wait that wakes for each answer"
    assert wakes == ["pending", "running", "succeeded"], "woken for each change only"


async def test_a_wait_that_hears_nothing_new_still_times_out_on_its_deadline(api):
    route = api.post("/veo/tasks").mock(return_value=batch(RUNNING))
    started = time.monotonic()
    [event] = await events(trigger(poll_interval=0.1, deadline=time.time() + 1.0))
    assert event["status"] == "timeout" and event["last_state"] == "running"
    assert 0.9 <= time.monotonic() - started < 1.5 and 3 <= route.call_count <= 11


async def test_a_job_that_changes_while_others_repeat_wakes_only_its_own_wait(api):
    import asyncio

    ticks = {"n": 0}

    def answer(request):
        ticks["n"] += 1
        ids = json.loads(request.content)["ids"]
        done = ticks["n"] >= 3  # t-0 finishes on the third tick; t-1 keeps running
        return batch(*[{**DONE, "id": i} if (i == "t-0" and done) else {**RUNNING, "id": i} for i in ids])

    api.post("/veo/tasks").mock(side_effect=answer)
    finished = asyncio.ensure_future(events(trigger(veo_task_id="t-0", poll_interval=0.2)))
    running = asyncio.ensure_future(events(trigger(veo_task_id="t-1", poll_interval=0.2, deadline=time.time() + 1.2)))
    [first] = await asyncio.wait_for(finished, 5)
    assert first["status"] == "success" and not running.done()
    [second] = await asyncio.wait_for(running, 5)
    assert second["status"] == "timeout" and second["last_state"] == "running"


async def test_the_fired_event_logs_as_one_short_line_without_the_api_answer(api):
    """Airflow's triggerer logs ``Trigger fired event ... result=<repr>`` into the task log."""
    from airflow.triggers.base import TriggerEvent

    api.post("/veo/tasks").mock(return_value=batch(DONE))
    [event] = [e async for e in trigger().run()]
    assert isinstance(event, TriggerEvent) and event.payload["result"]["data"][0]["video_url"]
    assert repr(event).startswith("TriggerEvent<success for Veo job t-1 after ")
    assert "cdn.example" not in repr(event) and "\n" not in repr(event)
    assert TriggerEvent.model_validate(event.model_dump()).payload == event.payload


def test_a_wait_run_in_the_worker_closes_its_own_client(monkeypatch):
    from veo_provider.hooks.clients import shared_async_client

    seen = []

    async def wait(self):
        seen.append(shared_async_client())
        return {"status": "timeout"}

    monkeypatch.setattr(VeoTrigger, "wait", wait)
    assert VeoTrigger(conn_id="veo_default", deadline=time.time()).run_here() == {"status": "timeout"}
    assert seen[0].is_closed


async def test_a_connection_the_triggerer_cannot_read_ends_the_wait_saying_where_it_looked(monkeypatch):
    """It used to crash run() with AirflowNotFoundException, shown to the task only as 'Trigger failure'."""
    monkeypatch.delenv("AIRFLOW_CONN_VEO_MISSING", raising=False)
    [event] = await events(trigger(conn_id="veo_missing"))
    assert event["status"] == "error" and event["veo_task_id"] == "t-1"
    assert "not defined where the wait reads connections" in event["error_message"]
    assert "AIRFLOW_CONN_VEO_MISSING" in event["error_message"] and "metadata database" in event["error_message"]


async def test_a_connection_extras_typo_ends_the_wait_with_an_error_naming_it(veo_conn):
    veo_conn(timout=5)
    [event] = await events(trigger())
    assert event["status"] == "error" and "'timout' (did you mean 'timeout'?)" in event["error_message"]


async def test_a_wait_cancelled_before_its_check_is_not_asked_about(api):
    import asyncio

    asked: list[list[str]] = []

    def answer(request):
        ids = json.loads(request.content)["ids"]
        asked.append(ids)
        return batch(*[{**DONE, "id": i, "response": {**DONE["response"], "task_id": i}} for i in ids])

    api.post("/veo/tasks").mock(side_effect=answer)
    due = time.time() + 0.5
    kept = asyncio.ensure_future(events(trigger(veo_task_id="t-kept", first_check_at=due)))
    removed = asyncio.ensure_future(events(trigger(veo_task_id="t-removed", first_check_at=due)))
    await asyncio.sleep(0.1)
    removed.cancel()  # the triggerer removed this trigger while it waited
    assert (await kept)[0]["status"] == "success"
    assert asked == [["t-kept"]]


async def test_waits_on_one_poll_tick_share_one_timer(api, monkeypatch):
    import asyncio

    def answer(request):
        return batch(*[{**RUNNING, "id": i} for i in json.loads(request.content)["ids"]])

    api.post("/veo/tasks").mock(side_effect=answer)
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kw):
        if getattr(callback, "__name__", "") == "_send":  # the batcher's send timers only
            timers.append(when)
        return call_at(when, callback, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    waits = [asyncio.ensure_future(events(trigger(veo_task_id=f"t-{i}", poll_interval=0.5))) for i in range(200)]
    await asyncio.sleep(1.8)  # the first check, then the ticks at the next multiples of 0.5 s
    for w in waits:
        w.cancel()
    # 200 waits, about four checks each: one timer per check time, not one per wait and check
    assert 3 <= len(timers) <= 5, timers
