"""Callback mode end to end: the emulator POSTs to the receiver inside the real api-server."""

from __future__ import annotations

import json

import pytest

from veo_provider.resume_hold import RESUME_HOLD

pytestmark = pytest.mark.e2e


def _polls(emulator) -> int:
    return emulator.stats()["requests_per_path"].get("/veo/tasks", 0)


def test_callback_resumes_the_task_at_once(cluster, emulator):
    # The job outlasts RESUME_HOLD (a task deferred more recently is left to its trigger's early
    # check: Airflow's resume race), as real Veo jobs do.
    emulator.set_faults(generation_seconds=RESUME_HOLD + 10)
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    [delivery] = [c for c in emulator.stats()["callbacks"] if c.get("status") == 200]
    # The receiver answers after it has resumed the task (TI -> scheduled, event attached); the
    # ledger names the job, so nothing is stored.
    assert json.loads(delivery["reply"]) == {"status": "resumed", "resumed": True}
    assert delivery["at"] - delivery["sent_at"] < 1.0, "resumed within 1 s of the callback"
    [ti] = cluster.task_instances("veo_e2e_callback", run)
    # The one early check at RESUME_HOLD and the confirmation read, no polling. (A second try, after
    # Airflow's resume race, adds its resume check and confirmation: see README "Known limitations".)
    assert _polls(emulator) == 2 if ti["try_number"] == 1 else _polls(emulator) <= 4, ti["try_number"]
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
    assert emulator.jobs_created == 1


def test_duplicated_callbacks_change_nothing(cluster, emulator):
    emulator.set_faults(generation_seconds=1.0, callback_duplicate={"copies": 3})
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    assert emulator.stats()["callbacks_delivered"] == 3 and emulator.jobs_created == 1
