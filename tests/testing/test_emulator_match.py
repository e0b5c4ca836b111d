"""The emulator's ``match`` option: a fault aimed at the requests (or jobs) whose body contains a marker.

The fault campaign (tests/reliability/campaign) runs several tasks against one emulator at once and
aims each fault at one task by a marker in its prompt; every other request must pass untouched.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from veo_provider.testing.emulator import Faults, VeoEmulator

BODY = {"action": "text2video", "model": "veo3", "async": True}


def _submit(client: httpx.Client, prompt: str, **extra: object) -> httpx.Response:
    return client.post("/veo/videos", json={**BODY, "prompt": prompt, **extra})


@pytest.fixture
def client(veo_emulator: VeoEmulator):
    with httpx.Client(base_url=veo_emulator.url, headers=veo_emulator.headers, timeout=10) as c:
        yield c


def test_a_matched_fault_skips_other_bodies_and_waits_for_its_own(veo_emulator: VeoEmulator, client) -> None:
    veo_emulator.set_faults(server_error={"match": "[task 2]", "after_create": True, "path": "videos"})
    assert _submit(client, "a kite [task 1]").status_code == 200
    assert _submit(client, "a kite [task 3]").status_code == 200
    assert _submit(client, "a kite [task 2]").status_code == 500
    assert _submit(client, "a kite [task 2]").status_code == 200, "times=1: used up"
    assert veo_emulator.jobs_created == 4, "after_create: the matched job exists all the same"
    assert veo_emulator.stats()["faults_triggered"] == {"server_error": 1}


def test_gate_faults_match_the_raw_body(veo_emulator: VeoEmulator, client) -> None:
    veo_emulator.set_faults(rate_limit={"match": "run-7", "times": 2})
    assert _submit(client, "run-8 a cat").status_code == 200
    assert [_submit(client, "run-7 a cat").status_code for _ in range(3)] == [429, 429, 200]
    assert veo_emulator.jobs_created == 2, "a 429 creates nothing"


def test_job_faults_match_the_submission(veo_emulator: VeoEmulator, client) -> None:
    veo_emulator.set_faults(
        fail_jobs={"match": "doomed"},
        callback_lose={"match": "quiet"},
        callback_duplicate={"match": "loud", "copies": 3},
        callback_delay={"match": "late", "seconds": 9},
    )
    url = {"callback_url": "http://127.0.0.1:9/cb"}
    for prompt in ("fine", "quiet", "loud", "late", "doomed"):
        assert _submit(client, prompt, **url).status_code == 200
    jobs = {job.request["prompt"]: job for job in veo_emulator.jobs}
    assert [p for p, j in jobs.items() if j.failure] == ["doomed"]
    assert [p for p, j in jobs.items() if j.callback_lose] == ["quiet"]
    assert {p: j.callback_copies for p, j in jobs.items()}["loud"] == 3
    assert [p for p, j in jobs.items() if j.callback_delay] == ["late"]
    assert veo_emulator.state.faults.model_dump(exclude_none=True) == {}, "every aimed fault fired once"


def test_a_download_never_matches(veo_emulator: VeoEmulator, client) -> None:
    veo_emulator.set_faults(generation_seconds=0, download_cut={"match": "anything"})
    job_id = _submit(client, "anything").json()["task_id"]
    [job] = veo_emulator.jobs
    assert job.task_id == job_id
    with httpx.Client(timeout=10) as plain:
        assert len(plain.get(job.video_url).content) > 0
    assert veo_emulator.stats()["downloads_cut"] == 0


def test_match_must_not_be_empty() -> None:
    with pytest.raises(ValidationError):
        Faults.model_validate({"drop_response": {"match": ""}})
    assert Faults.model_validate({"drop_response": {"match": "x"}}).drop_response.match == "x"
