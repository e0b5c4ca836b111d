"""A paid job's life on a real Airflow: callbacks only wake, the API decides; recovery needs nobody."""

from __future__ import annotations

import time

import httpx
import pytest

from veo_provider.resume_hold import RESUME_HOLD
from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

pytestmark = pytest.mark.e2e


def _wait_state(cluster, dag_id: str, run: str, state: str, timeout: float = 60, after: float = 0.0) -> dict:
    deadline = time.monotonic() + timeout
    tis: list[dict] = []
    while time.monotonic() < deadline:
        tis = cluster.task_instances(dag_id, run)
        if tis and tis[0]["state"] == state and time.time() >= after:
            return tis[0]
        time.sleep(0.3)
    raise TimeoutError(f"{dag_id}/{run} never {state}: {tis}")


def _wait_jobs(emulator, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while emulator.jobs_created < n:
        assert time.monotonic() < deadline, f"only {emulator.jobs_created} jobs"
        time.sleep(0.2)


def test_forged_callbacks_on_a_genuinely_signed_url_change_nothing(cluster, emulator):
    """A leaked callback URL can at worst wake the task: it reads the API and waits on."""
    emulator.set_faults(generation_seconds=60.0)
    run = cluster.trigger("veo_e2e_callback")
    _wait_jobs(emulator, 1)
    job = emulator.jobs[0]
    url = job.callback_url
    assert url and "sig_token=" in url
    forged_failure = {
        "success": False,
        "task_id": job.task_id,
        "trace_id": "forged",
        "error": {"code": "forbidden", "message": "FORGED failure"},
    }
    forged_success = {
        "success": True,
        "task_id": job.task_id,
        "data": [{"id": "forged", "video_url": "https://evil.example/forged.mp4", "state": "succeeded"}],
    }
    _wait_state(cluster, "veo_e2e_callback", run, "deferred")
    r = httpx.post(url, json=forged_failure, timeout=30)
    # Deferred a moment ago: stored, not resumed (RESUME_HOLD; its trigger's early check reads the API).
    assert r.status_code == 200 and r.json()["resumed"] is False, r.text
    for forged in (forged_failure, forged_success):
        _wait_state(cluster, "veo_e2e_callback", run, "deferred")
        time.sleep(RESUME_HOLD + 2)  # deferred at least this long: a callback now resumes it
        r = httpx.post(url, json=forged, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["resumed"] is True, r.json()
        time.sleep(1.0)  # the task leaves deferred, reads the API (still running) and defers again
    assert job.remaining() > 0, "the forged callbacks came while the job was still running"
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    x = cluster.xcom("veo_e2e_callback", run, "generate")
    assert x["state"] == "succeeded" and x["task_id"] == job.task_id
    assert x["video_url"] == job.video_url and "evil" not in x["video_url"]
    assert emulator.jobs_created == 1


def test_no_retries_anywhere_still_survives_the_resume_race(cluster, emulator):
    emulator.set_faults(generation_seconds=0.5)
    run = cluster.trigger("veo_e2e_no_retries")
    assert cluster.wait_for_run("veo_e2e_no_retries", run) == "success"
    tis = cluster.task_instances("veo_e2e_no_retries", run)
    assert len(tis) == 3 and all(ti["max_tries"] >= 2 for ti in tis), [ti["max_tries"] for ti in tis]
    assert emulator.jobs_created == 3


def test_execution_timeout_ends_the_deferred_try_and_the_retry_resumes_the_same_job(cluster, emulator):
    emulator.set_faults(generation_seconds=20.0)
    run = cluster.trigger("veo_e2e_execution_timeout")
    assert cluster.wait_for_run("veo_e2e_execution_timeout", run, timeout=240) == "success"
    [ti] = cluster.task_instances("veo_e2e_execution_timeout", run)
    assert ti["try_number"] >= 2, "the first try ended at its execution_timeout"
    tries = cluster.api("GET", f"/dags/veo_e2e_execution_timeout/dagRuns/{run}/taskInstances/generate/tries")
    first = next(t for t in tries["task_instances"] if t["try_number"] == 1)
    assert first["state"] in ("up_for_retry", "failed"), first["state"]
    assert 7 <= first["duration"] < 18, f"try 1 lasted {first['duration']}s, not ~8s"
    assert emulator.jobs_created == 1, "the retry resumed the job it already paid for"


def test_an_api_refusing_connections_for_a_minute_needs_nobody(cluster):
    """Connect failures on a submission used to be 'uncertain': failed for good, ledger stuck."""
    assert cluster.late_port is not None
    started = time.monotonic()
    run = cluster.trigger("veo_e2e_api_down")
    late = VeoEmulator(EmulatorConfig(generation_seconds=1.0, port=cluster.late_port))
    try:
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
        late.start()
        assert cluster.wait_for_run("veo_e2e_api_down", run, timeout=240) == "success"
        [ti] = cluster.task_instances("veo_e2e_api_down", run)
        assert ti["try_number"] >= 2
        assert late.jobs_created == 1
    finally:
        late.stop()
