"""Deferrable generation on a real scheduler + triggerer + api-server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

# The executor decides how deferrals leave and resume a worker, how a killed worker is noticed and
# how many workers race for the cap at once: these run on the Celery worker, as platform teams do
# (the fault campaign of `make test-reliability` kills LocalExecutor workers too).
pytestmark = [pytest.mark.e2e, pytest.mark.executors("CeleryExecutor")]


def test_three_mapped_videos_wait_concurrently_in_the_triggerer(cluster, emulator):
    emulator.set_faults(generation_seconds=4.0)
    run = cluster.trigger("veo_text_to_video")
    assert cluster.wait_for_run("veo_text_to_video", run) == "success"
    tis = [t for t in cluster.task_instances("veo_text_to_video", run) if t["task_id"] == "generate"]
    # try_number may be 2: Airflow 3.3's scheduler can fail a deferred task resumed before it processed
    # the executor event of the deferral exit (a slow scheduler on a busy machine); the retry then
    # resumes the same job, which is exactly what the ledger is for.
    assert len(tis) == 3 and all(t["state"] == "success" and t["try_number"] <= 2 for t in tis), [
        (t["map_index"], t["state"], t["try_number"]) for t in tis
    ]
    # All three waited at the same time: every job was submitted before any of them was done
    # (one at a time, the second job would only be created after the first finished).
    jobs = emulator.jobs
    assert len(jobs) == 3 and max(j.created_at for j in jobs) < min(j.finished_at for j in jobs)
    for i in range(3):
        x = cluster.xcom("veo_text_to_video", run, "generate", i)
        assert x["state"] == "succeeded" and Path(x["output_path"]).read_bytes()[4:8] == b"ftyp"
    assert emulator.jobs_created == 3 and emulator.max_jobs_per_body == 1


def test_killed_worker_resumes_the_same_job_on_retry(cluster, emulator):
    emulator.set_faults(generation_seconds=8.0)
    run = cluster.trigger("veo_e2e_crash")
    # Wait until the worker polls: the submission is done and its task id is in the ledger.
    assert emulator.wait_until(lambda: emulator.stats()["requests_per_path"].get("/veo/tasks", 0) >= 1, timeout=90)
    [ti] = cluster.task_instances("veo_e2e_crash", run)
    assert ti["state"] == "running" and ti["try_number"] == 1
    pids = subprocess.run(
        ["pgrep", "-f", f"airflow worker -- {ti['id']}"], capture_output=True, text=True
    ).stdout.split()
    assert pids, "the task's worker process was not found"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()

    assert cluster.wait_for_run("veo_e2e_crash", run, timeout=240) == "success"
    [ti] = cluster.task_instances("veo_e2e_crash", run)
    assert ti["try_number"] == 2, "the kill must have failed try 1 and a retry must have finished the task"
    x = cluster.xcom("veo_e2e_crash", run, "generate")
    assert x["state"] == "succeeded" and Path(x["output_path"]).read_bytes()[4:8] == b"ftyp"
    assert emulator.jobs_created == 1, "the retry must resume the paid job, not pay for a new one"
    assert time.monotonic() - killed_at < 200
