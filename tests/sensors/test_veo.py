"""VeoSensor: poke and deferrable waits on an existing Veo task, with timeout and soft_fail."""

from __future__ import annotations

import time

import httpx
import pytest
from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from veo_provider.exceptions import VeoJobFailedError
from veo_provider.models import XCOM_KEYS
from veo_provider.resume_hold import RESUME_HOLD
from veo_provider.sensors.veo import VeoSensor
from veo_provider.testing.payloads import DONE, RECORD_DONE, VIDEO_URL
from veo_provider.triggers.veo import VeoTrigger


def sensor(**kw) -> VeoSensor:
    return VeoSensor(**{"task_id": "wait", "veo_task_id": "t-1", **kw})


def test_poke_is_false_while_running_and_returns_the_result_when_done(api):
    api.post("/veo/tasks").mock(
        side_effect=[httpx.Response(200, json={"id": "t-1"}), httpx.Response(200, json=RECORD_DONE)]
    )
    s = sensor(deferrable=False)
    assert s.poke({}) is False
    done = s.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert tuple(done.xcom_value) == XCOM_KEYS and done.xcom_value["video_url"] == VIDEO_URL


def test_poke_fails_on_an_api_side_failure(api):
    failed = {"id": "t-1", "response": {"success": False, "error": {"code": "forbidden", "message": "moderation"}}}
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=failed))
    with pytest.raises(VeoJobFailedError, match="forbidden: moderation"):
        sensor(deferrable=False).poke({})


def test_deferrable_by_default_with_a_deadline_from_timeout(api):
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json={"id": "t-1"}))
    with pytest.raises(TaskDeferred) as info:
        sensor(timeout=120, poke_interval=5).execute({})
    trig = info.value.trigger
    assert isinstance(trig, VeoTrigger) and trig.veo_task_id == "t-1" and trig.poll_interval == 5
    assert 100 < trig.deadline - time.time() <= 120
    # Airflow's resume race: the trigger's first check comes no sooner than RESUME_HOLD.
    assert RESUME_HOLD - 5 < trig.first_check_at - time.time() <= RESUME_HOLD


def test_a_finished_job_is_returned_without_deferring(api):
    """A deferral would only add a resume for Airflow's race to fail (apache/airflow#72716)."""
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
    result = sensor().execute({})
    assert result["state"] == "succeeded" and result["video_url"] == VIDEO_URL


def test_a_failed_job_fails_at_once_and_a_transient_error_defers(api, veo_conn):
    veo_conn(max_retries=1)  # the transient error is not worth retrying here: the wait would retry it
    failed = {"id": "t-1", "response": {"success": False, "error": {"code": "forbidden", "message": "moderation"}}}
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=failed))
    with pytest.raises(VeoJobFailedError, match="forbidden: moderation"):
        sensor().execute({})
    api.post("/veo/tasks").mock(return_value=httpx.Response(500, json={"error": {"code": "x", "message": "down"}}))
    with pytest.raises(TaskDeferred):
        sensor().execute({})


def test_a_first_poll_delay_defers_without_an_inline_check(api):
    route = api.post("/veo/tasks")
    with pytest.raises(TaskDeferred) as info:
        sensor(first_poll_delay=60).execute({})
    assert not route.called
    assert 55 < info.value.trigger.first_check_at - time.time() <= 60


def test_timeout_event_is_a_sensor_timeout_and_soft_fail_skips():
    event = {"status": "timeout", "veo_task_id": "t-1", "last_state": "running"}
    with pytest.raises(AirflowSensorTimeout, match="did not finish"):
        sensor().execute_complete({}, event)
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, {})


def test_success_event_becomes_the_xcom():
    result = sensor().execute_complete({}, {"status": "success", "veo_task_id": "t-1", "result": DONE})
    assert result["state"] == "succeeded" and result["task_id"] == "t-1"
