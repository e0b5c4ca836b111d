"""The fault campaign: its plans are reproducible, its verdicts are right, and a seeded slice runs.

The slice (markers ``e2e`` and ``reliability``: it runs in ``make test-reliability``, before the
full campaign) runs six seeds at once on a cluster of its own (api-server, scheduler, dag-processor,
two triggerers, PostgreSQL, LocalExecutor), one of them with a triggerer SIGKILLed while its jobs
wait. Its assertions name each fault it must have injected; the full campaign only counts them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time

import pytest

from tests.reliability.campaign.campaign import plans_for, run_campaign
from tests.reliability.campaign.lag import deferral_lags, describe_lags
from tests.reliability.campaign.plan import CLUSTER_FAULTS, FAULTS, draw, emulator_faults
from tests.reliability.campaign.report import MUST_BE_ZERO
from tests.reliability.campaign.verify import TaskFacts, classify
from veo_provider.testing.cluster import postgres_unavailable
from veo_provider.testing.emulator import EmulatorConfig, Faults, Job, VeoEmulator

#: Six seeds covering a triggerer kill, forged callbacks, a dropped answer, a kill during the submit,
#: a lost callback and a failed job (all on the LocalExecutor here).
SLICE_SEEDS = (1074, 1010, 1017, 1026, 1012, 1047)


# ------------------------------------------------------------------------------ plans


def test_a_seed_always_draws_the_same_plan() -> None:
    assert [draw(s) for s in range(1000, 1200)] == [draw(s) for s in range(1000, 1200)]
    assert draw(1000) != draw(1001)


def test_two_hundred_seeds_draw_every_fault() -> None:
    plans = [draw(s) for s in range(1000, 1200)]
    faults = collections.Counter(p.fault for p in plans)
    assert set(faults) == set(FAULTS), set(FAULTS) - set(faults)
    clusters = collections.Counter(p.cluster for p in plans if p.cluster)
    assert set(clusters) == set(CLUSTER_FAULTS) and sum(clusters.values()) >= 10, clusters
    executors = collections.Counter(p.executor for p in plans)
    assert 20 <= executors["CeleryExecutor"] <= 60, executors
    assert {p.width for p in plans} == {2, 3}
    assert all({"poll", "callback"} >= set(p.modes) for p in plans)


def test_callback_faults_aim_at_a_callback_task() -> None:
    for plan in (draw(s) for s in range(1000, 1400)):
        if FAULTS[plan.fault].target_mode in ("callback", "poll"):
            assert plan.modes[plan.target] == FAULTS[plan.fault].target_mode, plan
        if plan.cluster == "api_server_restart":
            assert "callback" in plan.modes, plan


def test_every_plan_is_a_valid_emulator_fault_set() -> None:
    for plan in (draw(s) for s in range(1000, 1200)):
        faults = Faults.model_validate(emulator_faults(plan))
        assert faults.generation_seconds == plan.generation_seconds


def test_the_slice_holds_a_triggerer_kill() -> None:
    plans = plans_for(SLICE_SEEDS, executor="LocalExecutor")
    assert [p.cluster for p in plans].count("triggerer_kill") == 1
    assert {p.executor for p in plans} == {"LocalExecutor"}


# ------------------------------------------------------------------------------ verdicts


@pytest.fixture(scope="module")
def jobs():
    """Three finished jobs: one succeeded, one failed, and one more succeeded."""
    with VeoEmulator(EmulatorConfig(generation_seconds=0)) as emu:
        emu.set_faults(fail_jobs={"match": "doomed"})
        body = {"action": "text2video", "model": "veo3", "async": True}
        import httpx

        with httpx.Client(base_url=emu.url, headers=emu.headers, timeout=10) as client:
            for prompt in ("fine", "doomed", "again"):
                client.post("/veo/videos", json={**body, "prompt": prompt}).raise_for_status()
        time.sleep(0.05)
        yield {j.request["prompt"]: j for j in emu.jobs}


def _facts(jobs: list[Job], state: str = "success", **kw) -> TaskFacts:
    base = {"index": 0, "mode": "poll", "state": state, "try_number": 1, "xcom": None, "ledger": None}
    return TaskFacts(**{**base, "file_size": 100, "jobs": jobs, **kw})


def _xcom(job: Job) -> dict:
    return {"task_id": job.task_id, "video_url": job.video_url}


def test_verdicts(jobs) -> None:
    fine, doomed, again = jobs["fine"], jobs["doomed"], jobs["again"]

    def verdict(facts: TaskFacts, job_failed: bool = False):
        return classify(facts, expected_size=100, job_failed_expected=job_failed)

    assert verdict(_facts([fine], xcom=_xcom(fine))).outcome == "ok"
    assert verdict(_facts([fine], xcom=_xcom(fine), file_size=None)).outcome == "lost"
    assert verdict(_facts([fine], xcom={**_xcom(fine), "video_url": "https://evil.example/x.mp4"})).outcome == "lost"
    two = verdict(_facts([fine, again], xcom=_xcom(again)))
    assert (two.outcome, two.duplicates, two.paid) == ("ok", 1, 2)
    retried = verdict(_facts([doomed, again], xcom=_xcom(again)))
    assert (retried.outcome, retried.duplicates) == ("ok", 0), "a job after a failed one is no duplicate"
    assert verdict(_facts([doomed], "failed"), job_failed=True).outcome == "expected_failure"
    assert verdict(_facts([doomed], "failed")).outcome == "unexpected_failure"
    uncertain = {"state": "submitting", "key": "k"}
    assert verdict(_facts([fine], "failed", ledger=uncertain)).outcome == "uncertain_by_design"
    assert verdict(_facts([], "failed", ledger=uncertain)).outcome == "uncertain_by_design"
    called_back = dataclasses.replace(fine, callbacks=[{"status": 200}])
    assert verdict(_facts([called_back], "failed", ledger=uncertain, mode="callback")).outcome == "lost"
    both_lost = verdict(_facts([fine], "failed", ledger=uncertain, mode="callback"))
    assert both_lost.outcome == "uncertain_by_design", "answer and callback lost: nothing names the job"
    assert verdict(_facts([fine], "failed", ledger={"state": "submitted"})).outcome == "lost"
    assert verdict(_facts([fine], "deferred")).outcome == "hung"
    unrecorded = classify(
        _facts([fine], "failed", ledger=uncertain), expected_size=100, job_failed_expected=False, answer_lost=False
    )
    assert unrecorded.outcome == "lost", "no fault lost the answer: the job id was dropped on our side"


def test_deferral_lag_pairs_each_deferral_with_the_schedulers_next_event_of_that_try(tmp_path) -> None:
    attempt = tmp_path / "logs/dag_id=d/run_id=r1/task_id=generate/map_index=1/attempt=2.log"
    attempt.parent.mkdir(parents=True)
    pause = {"timestamp": "2026-11-26T01:00:10.000000Z", "event": "Pausing task as DEFERRED. "}
    attempt.write_text(json.dumps({"timestamp": "2026-11-26T01:00:09Z", "event": "x"}) + "\n" + json.dumps(pause))
    event = (
        "{} [info     ] Received executor event with state success for task instance TaskInstanceKey("
        "dag_id='d', task_id='generate', run_id='r1', try_number={}, map_index=1) [airflow.jobs]\n"
    )
    (tmp_path / "scheduler.log").write_text(
        event.format("2026-11-26T01:00:05.000000Z", 2)  # before the deferral: the try's start
        + event.format("2026-11-26T01:00:16.500000Z", 2)
        + event.format("2026-11-26T01:00:11.000000Z", 1)  # another try
    )
    assert deferral_lags(tmp_path) == [6.5]
    assert describe_lags([6.5], 15) == "6.5 / 6.5 / 6.5 s of 1 deferrals; 0 at or over the 15 s hold"
    assert describe_lags([], 15) == "not measured"


# ------------------------------------------------------------------------------ the slice


@pytest.mark.e2e
@pytest.mark.reliability
def test_seeded_slice_on_a_real_cluster(tmp_path) -> None:
    if reason := postgres_unavailable():
        pytest.skip(f"the fault campaign needs PostgreSQL: {reason}")
    plans = plans_for(SLICE_SEEDS, executor="LocalExecutor")
    outcome = run_campaign(plans, concurrency=len(plans), workdir=tmp_path)
    print(outcome.table)
    s = outcome.summary
    assert s.runs == len(SLICE_SEEDS)
    assert {name: value for name, value in s.zero_rows().items() if value} == {}, outcome.table
    assert set(s.zero_rows()) == set(MUST_BE_ZERO)
    assert s.injected["triggerer_kill"] == 1, outcome.events
    assert s.triggers_adopted == "1/1", outcome.events
    assert s.injected["job_failed"] == 1 and s.injected["callback_forged"] == 1, s.injected
    assert not s.secret_hits, outcome.table
    assert s.hostile_sent and s.hostile_accepted == 0, outcome.table
    assert s.deferral_lags, "the scheduler's lag after deferrals was measured"
