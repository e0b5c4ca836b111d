"""VeoHook against the running emulator (an independent implementation of the API), sync and async."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from veo_provider.exceptions import VeoAuthError, VeoBadRequestError, VeoSubmissionUncertain
from veo_provider.hooks.veo import VeoHook
from veo_provider.models import TaskState, build_request, decide_state

MUG = "White ceramic coffee mug on glossy marble countertop with morning window light."


@pytest.fixture
def hook(veo_connection_env, monkeypatch) -> VeoHook:
    return VeoHook(retry_wait_initial=0.05, retry_wait_max=0.2)


def async_request(**kw):
    return build_request("videos", action="text2video", model="veo2", prompt=MUG, **{"async": True}, **kw)


def test_sync_submission_returns_the_finished_result(hook, veo_emulator):
    sub = hook.submit(build_request("videos", action="text2video", model="veo2", prompt=MUG))
    assert sub.status.state is TaskState.SUCCEEDED and sub.result is not None
    assert sub.result.data[0].video_url.startswith(veo_emulator.url)
    assert veo_emulator.jobs_created == 1


def test_async_submission_then_tasks_until_done(hook, veo_emulator):
    sub = hook.submit(async_request())
    assert sub.result is None
    states = []
    for _ in range(100):
        states.append(decide_state(hook.get_task(sub.veo_task_id)).state)
        if states[-1].done:
            break
        time.sleep(0.02)
    assert states[-1] is TaskState.SUCCEEDED
    assert {TaskState.PENDING, TaskState.RUNNING} & set(states), "the job was seen before it was done"
    [record] = hook.get_tasks([sub.veo_task_id])
    assert record.id == sub.veo_task_id


def test_read_timeout_on_submit_is_uncertain_and_the_job_exists_once(
    hook, veo_emulator, veo_connection_env, monkeypatch
):
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_VEO_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps({**conn, "extra": {"timeout": 0.5}}))
    veo_emulator.set_faults(slow_response={"seconds": 1.5, "path": "/veo/videos"})
    with pytest.raises(VeoSubmissionUncertain, match="not resent"):
        VeoHook().submit(async_request())
    assert veo_emulator.wait_until(lambda: veo_emulator.jobs_created == 1, timeout=3)
    time.sleep(1.2)  # had the hook resent, a second job would exist by now
    assert veo_emulator.jobs_created == 1


def test_dropped_answer_after_creation_is_uncertain(hook, veo_emulator):
    veo_emulator.set_faults(drop_response={"path": "/veo/videos"})
    with pytest.raises(VeoSubmissionUncertain):
        hook.submit(async_request())
    assert veo_emulator.jobs_created == 1


def test_read_waits_for_retry_after_then_succeeds(hook, veo_emulator):
    sub = hook.submit(async_request())
    veo_emulator.set_faults(rate_limit={"times": 1, "retry_after": 2, "path": "/veo/tasks"})
    start = time.monotonic()
    assert hook.get_task(sub.veo_task_id).id == sub.veo_task_id
    assert time.monotonic() - start >= 2.0


def test_rate_limited_submission_is_retried_and_pays_once(hook, veo_emulator):
    veo_emulator.set_faults(rate_limit={"times": 1, "retry_after": 0, "path": "/veo/videos"})
    hook.submit(async_request())
    assert veo_emulator.jobs_created == 1


def test_wrong_token_is_an_auth_error(veo_emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_VEO_DEFAULT", f'{{"conn_type": "veo", "host": "{veo_emulator.url}", "password": "wrong"}}'
    )
    with pytest.raises(VeoAuthError, match="check the API token"):
        VeoHook().get_task("x")
    assert VeoHook().test_connection()[0] is False


def test_bad_body_the_emulator_refuses_is_a_bad_request(hook, veo_emulator):
    bad = build_request("videos", action="get1080p", video_id="no-such-video", **{"async": True})
    with pytest.raises(VeoBadRequestError):
        hook.submit(bad)


def test_download_of_a_large_video(hook, veo_emulator, tmp_path):
    sub = hook.submit(build_request("videos", action="text2video", model="veo2", prompt=MUG))
    url = sub.result.data[0].video_url + "?size=5000000"
    path = hook.download(url, tmp_path / "big.mp4")
    data = Path(path).read_bytes()
    assert len(data) >= 5_000_000 and data[4:8] == b"ftyp"


def test_connection_test_passes_with_the_right_token(hook):
    ok, message = hook.test_connection()
    assert ok, message


async def test_async_calls(hook, veo_emulator):
    sub = await hook.asubmit(async_request())
    record = await hook.aget_task(sub.veo_task_id)
    assert record.id == sub.veo_task_id
    assert [r.id for r in await hook.aget_tasks([sub.veo_task_id, "unknown"])] == [sub.veo_task_id]


async def test_async_submit_read_timeout_is_uncertain(veo_emulator, veo_connection_env, monkeypatch):
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_VEO_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps({**conn, "extra": {"timeout": 0.5}}))
    veo_emulator.set_faults(slow_response={"seconds": 1.5, "path": "/veo/videos"})
    with pytest.raises(VeoSubmissionUncertain):
        await VeoHook().asubmit(async_request())
    assert veo_emulator.jobs_created == 1
