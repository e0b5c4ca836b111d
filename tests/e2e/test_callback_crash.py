"""The one real-cluster run of the version matrix (.ci/test-airflow.sh): callback mode, a worker killed
while its paid POST is in flight, a forged callback on the genuinely signed URL; one job is paid."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from veo_provider.compat import AIRFLOW_V_3_1_PLUS
from veo_provider.resume_hold import RESUME_HOLD

pytestmark = pytest.mark.e2e

#: The API creates the job, then holds its answer this long: the worker is killed inside the POST.
HOLD = 30.0
GENERATION = 45.0


def _ti(cluster, dag_id: str, run: str) -> dict:
    [ti] = cluster.task_instances(dag_id, run)
    return ti


def _wait(cluster, dag_id: str, run: str, ok, what: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    ti: dict = {}
    while time.monotonic() < deadline:
        ti = _ti(cluster, dag_id, run)
        if ok(ti):
            return ti
        time.sleep(0.3)
    raise TimeoutError(f"{dag_id}/{run}: never {what}: {ti}")


def _kill_runner(ti_id: str) -> None:
    # The task runner titles itself `airflow worker -- <ti.id>` (the supervisor's title differs).
    pids = subprocess.run(["pgrep", "-f", f"airflow worker -- {ti_id}"], capture_output=True, text=True).stdout.split()
    assert pids, f"no process titled 'airflow worker -- {ti_id}' (the task's worker)"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)


def test_a_worker_killed_in_the_paid_post_and_a_forged_callback_still_pay_one_job(cluster, emulator):
    emulator.set_faults(
        generation_seconds=GENERATION, slow_response={"path": "/veo/videos", "seconds": HOLD, "times": 1}
    )
    dag_id = "veo_e2e_callback"
    run = cluster.trigger(dag_id)
    assert emulator.wait_until(lambda: emulator.jobs_created >= 1, timeout=120), "the task never submitted"
    job = emulator.jobs[0]
    ti = _wait(cluster, dag_id, run, lambda t: t["state"] == "running", "running")
    _kill_runner(ti["id"])
    assert time.time() - job.created_at < HOLD, "the kill came after the API answered: not inside the POST"

    # The retry finds the submission it cannot prove (no answer) in the ledger and waits for the
    # callback that names the job, without paying again.
    waiting = ("running", "deferred")
    if not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's supervisor reports a SIGKILLed task runner as FAILED, retries or not: a
        # person clears the task, and the cleared try resumes the same job (the ledger survives).
        # Cleared only once the scheduler has failed the run, as a person would: a clear that lands
        # between the task's failure and the scheduler's verdict on the run is undone by that verdict
        # (the run fails with the cleared task in it, never scheduled).
        _wait(cluster, dag_id, run, lambda t: t["state"] == "failed", "failed", 120)
        assert cluster.wait_for_run(dag_id, run, timeout=120) == "failed"
        body = {"dag_run_id": run, "task_ids": ["generate"], "dry_run": False, "only_failed": True}
        cluster.api("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)
    _wait(cluster, dag_id, run, lambda t: t["try_number"] >= 2 and t["state"] in waiting, "retried", 120)
    time.sleep(RESUME_HOLD + 2)  # waiting long enough that a callback is acted on at once
    forged = {
        "success": True,
        "task_id": "forged-job-id",
        "data": [{"id": "forged", "video_url": "https://evil.example/forged.mp4", "state": "succeeded"}],
    }
    r = httpx.post(job.callback_url, json=forged, timeout=30)
    assert r.status_code < 500, r.text
    assert job.remaining() > 0, "the forged callback came while the real job was still running"

    assert cluster.wait_for_run(dag_id, run, timeout=240) == "success"
    x = cluster.xcom(dag_id, run, "generate")
    assert x["state"] == "succeeded" and x["task_id"] == job.task_id and x["video_url"] == job.video_url
    assert emulator.jobs_created == 1, "the killed try's job was adopted, not paid again"
