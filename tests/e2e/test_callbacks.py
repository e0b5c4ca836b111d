"""Callback mode end to end: the emulator POSTs to the receiver inside the real api-server."""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = pytest.mark.e2e


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _polls(emulator) -> int:
    return emulator.stats()["requests_per_path"].get("/veo/tasks", 0)


def _delivered_at(emulator) -> float:
    callbacks = emulator.stats()["callbacks"]
    [delivery] = [c for c in callbacks if c.get("status") == 200] or [
        pytest.fail(f"no delivered callback: {callbacks}")
    ]
    return delivery["at"]


def test_callback_resumes_the_task_at_once_without_polling(cluster, emulator):
    emulator.set_faults(generation_seconds=4.0)
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    [ti] = cluster.task_instances("veo_e2e_callback", run)
    assert ti["try_number"] == 1
    [job] = emulator.jobs
    sent = job.finished_at  # the emulator calls back the moment the job is done
    assert sent <= _delivered_at(emulator)
    assert _ts(ti["scheduled_when"]) - sent < 1.0, "resumed within 1 s of the callback"
    assert _polls(emulator) == 1, "only the confirmation read: no polling"
    x = cluster.xcom("veo_e2e_callback", run, "generate")
    assert x["state"] == "succeeded" and emulator.jobs_created == 1


def test_lost_callback_is_caught_by_the_safety_net(cluster, emulator):
    emulator.set_faults(generation_seconds=1.0, callback_lose=1)
    run = cluster.trigger("veo_e2e_callback_safety_net")
    assert cluster.wait_for_run("veo_e2e_callback_safety_net", run) == "success"
    assert emulator.stats()["callbacks_lost"] == 1 and emulator.jobs_created == 1


def test_lost_submission_answer_is_reconciled_by_the_callback(cluster, emulator):
    emulator.set_faults(generation_seconds=2.0, drop_response={"path": "/veo/videos"})
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    assert emulator.stats()["responses_dropped"] == 1
    assert emulator.jobs_created == 1, "the lost answer must not lead to a second job"
    x = cluster.xcom("veo_e2e_callback", run, "generate")
    assert x["state"] == "succeeded" and x["task_id"] == emulator.jobs[0].task_id


def test_callback_before_the_task_deferred_still_succeeds(cluster, emulator):
    emulator.set_faults(generation_seconds=0.0)
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    [ti] = cluster.task_instances("veo_e2e_callback", run)
    assert ti["try_number"] == 1 and emulator.jobs_created == 1


def test_duplicated_callbacks_change_nothing(cluster, emulator):
    emulator.set_faults(generation_seconds=1.0, callback_duplicate={"copies": 3})
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    assert emulator.stats()["callbacks_delivered"] == 3 and emulator.jobs_created == 1
