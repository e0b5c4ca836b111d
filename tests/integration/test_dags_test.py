"""`airflow dags test` of the example DAGs and of the unhappy paths, against the emulator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support import LAST_RUN
from veo_provider.models import XCOM_KEYS

pytestmark = pytest.mark.integration


def is_mp4(path: Path) -> bool:
    head = path.read_bytes()[:12]
    return head[4:8] == b"ftyp"


def test_example_dag_generates_three_videos_once_each(dags_test, emulator):
    result = dags_test("veo_text_to_video")
    assert result.succeeded, result.output[-4000:]
    xcoms = result.xcoms("veo_text_to_video", "generate")
    assert len(xcoms) == 3
    for x in xcoms:
        assert tuple(x) == XCOM_KEYS
        assert x["state"] == "succeeded" and x["video_url"] and x["video_id"] and x["model"] == "veo3-fast"
        assert is_mp4(Path(x["output_path"]))
    assert len({x["output_path"] for x in xcoms}) == 3
    links = result.xcoms("veo_text_to_video", "generate", key="_link_VeoVideoLink")
    [(run_id,)] = result.query(LAST_RUN, "veo_text_to_video")
    run = quote(run_id, safe="")
    players = [f"veo-ui/player/veo_text_to_video/{run}/generate/{i}" for i in range(3)]
    assert links == players, "the 'Veo video' button opens each stored clip's player page"
    assert emulator.jobs_created == 3 and emulator.max_jobs_per_body == 1
    errors = [line for line in result.output.splitlines() if "[error" in line]
    assert errors == [], "a successful run logs no [error] line (deferral, extra link, report)"


def test_sensor_waits_for_a_job_submitted_without_waiting(dags_test, emulator):
    result = dags_test("veo_submit_then_sense")
    assert result.succeeded, result.output[-4000:]
    [submitted] = result.xcoms("veo_submit_then_sense", "submit")
    [sensed] = result.xcoms("veo_submit_then_sense", "wait")
    assert submitted["state"] == "pending"
    assert sensed["task_id"] == submitted["task_id"] and sensed["state"] == "succeeded"
    assert tuple(sensed) == XCOM_KEYS
    assert emulator.jobs_created == 1


def test_api_side_failure_fails_with_code_and_reason_without_retries(dags_test, emulator):
    emulator.set_faults(fail_jobs={"times": 1, "code": "generation_failed", "message": "upstream model gave up"})
    result = dags_test("veo_it_api_failure")
    assert not result.succeeded
    assert "generation_failed" in result.output and "upstream model gave up" in result.output
    assert result.tries("veo_it_api_failure", "generate") == [(-1, "failed", 1)], "retries=2 must not be used"
    assert emulator.jobs_created == 1


def test_moderation_refusal_fails_at_once_and_pays_nothing(dags_test, emulator):
    emulator.set_faults(moderation={"words": ["forbidden-thing"]})
    result = dags_test("veo_it_api_failure", conf={"prompt": "a forbidden-thing on a table"})
    assert not result.succeeded
    assert "forbidden" in result.output and "change the prompt or images" in result.output
    assert result.tries("veo_it_api_failure", "generate") == [(-1, "failed", 1)]
    assert emulator.jobs_created == 0


def test_retry_after_timeout_resumes_the_same_job(dags_test, emulator):
    emulator.set_faults(generation_seconds=3.0)
    result = dags_test("veo_it_timeout_resume")
    assert result.succeeded, result.output[-4000:]
    assert "did not finish within timeout" in result.output and "Resuming Veo job" in result.output
    [(_, state, tries)] = result.tries("veo_it_timeout_resume", "generate")
    assert state == "success" and tries >= 2
    assert emulator.jobs_created == 1


def test_retry_after_failed_download_does_not_pay_again(dags_test, emulator):
    emulator.set_faults(download_cut={"times": 1})
    result = dags_test("veo_it_download_retry", max_retries=1)
    assert result.succeeded, result.output[-4000:]
    [x] = result.xcoms("veo_it_download_retry", "generate")
    assert is_mp4(Path(x["output_path"]))
    assert result.tries("veo_it_download_retry", "generate") == [(-1, "success", 2)]
    assert emulator.jobs_created == 1


def test_a_75_s_outage_of_the_api_while_the_job_runs_ends_in_one_paid_job_without_a_person(dags_test, emulator):
    import threading
    import time

    emulator.set_faults(generation_seconds=20.0)
    outage: dict[str, float] = {}

    def go_down_once_the_job_exists() -> None:
        deadline = time.monotonic() + 600
        while emulator.jobs_created == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        emulator.set_faults(server_error={"times": None, "path": "/veo/tasks"})
        outage["start"] = time.monotonic()
        time.sleep(75)
        emulator.set_faults(server_error=None)
        outage["end"] = time.monotonic()

    down = threading.Thread(target=go_down_once_the_job_exists, daemon=True)
    down.start()
    result = dags_test("veo_it_outage", timeout=420)
    down.join(timeout=1)
    assert outage.get("end"), "the run ended before the outage did"
    assert result.succeeded, result.output[-4000:]
    assert emulator.jobs_created == 1
    [(_, state, _)] = result.tries("veo_it_outage", "generate")
    assert state == "success"


def test_not_deferrable_waits_in_the_worker(dags_test, emulator):
    result = dags_test("veo_it_not_deferrable")
    assert result.succeeded, result.output[-4000:]
    assert "running trigger in line" not in result.output
    assert emulator.jobs_created == 1


def test_a_connection_kept_only_in_the_metadata_db_works_for_the_wait(airflow_env, dags_test, emulator):
    """`airflow connections add` (the quickstart's way): the inline trigger used to miss it after paying."""
    import subprocess

    from tests.support import BIN

    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "connections", "delete", "veo_db_only"], env=airflow_env, capture_output=True)
    add = [airflow, "connections", "add", "veo_db_only", "--conn-type", "veo", "--conn-host", emulator.url]
    added = subprocess.run([*add, "--conn-password", "test-token"], env=airflow_env, capture_output=True, text=True)
    assert added.returncode == 0, added.stdout + added.stderr
    result = dags_test("veo_it_db_connection")
    assert result.succeeded, result.output[-4000:]
    assert "isn't defined" not in result.output
    assert result.tries("veo_it_db_connection", "deferred") == [(-1, "success", 1)]
    assert result.tries("veo_it_db_connection", "in_worker") == [(-1, "success", 1)]
    assert emulator.jobs_created == 2


def test_a_typo_in_the_connection_extras_fails_at_once_before_paying(dags_test, emulator):
    result = dags_test("veo_it_api_failure", daily_job_limt=3)
    assert not result.succeeded
    assert "'daily_job_limt' (did you mean 'daily_job_limit'?)" in result.output
    assert result.tries("veo_it_api_failure", "generate") == [(-1, "failed", 1)], "a configuration error is final"
    assert emulator.jobs_created == 0
