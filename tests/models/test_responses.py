"""The task-state decision from every answer shape, and what a result becomes in XCom."""

from __future__ import annotations

import pytest

from veo_provider.models import TaskState, TaskStatus, VeoResult, decide_state, result_to_xcom
from veo_provider.testing.payloads import DONE, VIDEO_ID, VIDEO_URL


@pytest.mark.parametrize(
    ("shape", "state"),
    [
        ({"task_id": "t"}, TaskState.PENDING),
        ({"id": "t", "request": {}}, TaskState.PENDING),
        ({"id": "t", "response": {"success": True, "data": [{"state": "running"}]}}, TaskState.RUNNING),
        ({"id": "t", "response": {"success": True, "data": [{"state": "processing"}]}}, TaskState.RUNNING),
        ({"id": "t", "response": DONE}, TaskState.SUCCEEDED),
        (DONE, TaskState.SUCCEEDED),
        ({**DONE, "data": [{"id": "v", "video_url": "https://x", "state": "completed"}]}, TaskState.SUCCEEDED),
        ({"success": True, "data": [{"id": "v", "video_url": "https://x"}]}, TaskState.SUCCEEDED),
        ({"success": False, "error": {"code": "forbidden", "message": "m"}}, TaskState.FAILED),
        ({"success": True, "data": [{"state": "failed"}]}, TaskState.FAILED),
        ({"success": True, "data": [{"state": "cancelled"}]}, TaskState.FAILED),
        ({"success": True, "data": [{"id": "v", "state": "succeeded"}]}, TaskState.FAILED),
    ],
    ids=[
        "ack",
        "record-pending",
        "running",
        "processing",
        "record-done",
        "callback",
        "completed-word",
        "success-no-word",
        "success-false",
        "failed-word",
        "cancelled",
        "done-without-url",
    ],
)
def test_one_function_decides_the_state_from_every_shape(shape, state):
    assert decide_state(shape).state is state


def test_failure_carries_code_and_reason():
    status = decide_state(
        {
            "id": "t",
            "trace_id": "tr",
            "response": {"success": False, "task_id": "t", "error": {"code": "forbidden", "message": "moderation"}},
        }
    )
    assert (status.error_code, status.error_message, status.veo_task_id, status.trace_id) == (
        "forbidden",
        "moderation",
        "t",
        "tr",
    )
    assert decide_state({"success": True, "data": [{"id": "v", "state": "succeeded"}]}).error_code == "no_video_url"


def test_unknown_fields_are_tolerated_and_kept():
    result = VeoResult.model_validate({**DONE, "new_field": 1, "data": [{**DONE["data"][0], "duration": 8}]})
    assert result.model_extra == {"new_field": 1} and result.data[0].model_extra == {"duration": 8}


def test_xcom_and_event_shapes():
    status = decide_state(DONE)
    x = result_to_xcom(status, sent={"model": "veo3", "action": "text2video"}, output_path="/o.mp4")
    assert (x["model"], x["action"], x["prompt"]) == ("veo3", "text2video", None)
    assert x["video_id"] == VIDEO_ID and x["video_url"] == VIDEO_URL and x["output_path"] == "/o.mp4"


@pytest.mark.parametrize("state", [TaskState.PENDING, TaskState.RUNNING])
def test_a_running_job_is_not_finished(state):
    assert TaskStatus(state=state).finished("t") is False


def test_a_succeeded_job_is_finished_and_a_failed_one_raises_with_the_api_reason():
    from veo_provider.exceptions import VeoJobFailedError

    assert TaskStatus(state=TaskState.SUCCEEDED, veo_task_id="t").finished() is True
    bad = decide_state({"success": False, "task_id": "t", "error": {"code": "forbidden", "message": "moderation"}})
    with pytest.raises(VeoJobFailedError, match="Veo job t failed at the API: forbidden: moderation"):
        bad.finished()
    unnamed = TaskStatus(state=TaskState.FAILED, error_code="forbidden", error_message="moderation")
    with pytest.raises(VeoJobFailedError, match="Veo job job-9 failed"):
        unnamed.finished("job-9")
