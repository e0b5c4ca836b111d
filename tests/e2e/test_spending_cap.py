"""The spending cap on a real Airflow: workers ask the api-server's /veo/quota, PostgreSQL counts."""

from __future__ import annotations

import pytest

# The executor decides how deferrals leave and resume a worker, how a killed worker is noticed and
# how many workers race for the cap at once: these run on the Celery worker, as platform teams do
# (the fault campaign of `make test-reliability` kills LocalExecutor workers too).
pytestmark = [pytest.mark.e2e, pytest.mark.executors("CeleryExecutor")]


def test_a_daily_limit_of_two_pays_exactly_two_of_three_concurrent_tasks(cluster, emulator):
    emulator.set_faults(generation_seconds=3.0, download_cut={"times": 1})
    run = cluster.trigger("veo_e2e_capped")
    assert cluster.wait_for_run("veo_e2e_capped", run, timeout=240) == "failed"
    tis = sorted(cluster.task_instances("veo_e2e_capped", run), key=lambda ti: ti["map_index"])
    assert sorted(ti["state"] for ti in tis) == ["failed", "success", "success"], tis
    assert emulator.jobs_created == 2, "the third task was refused before its POST"
    [failed] = [ti for ti in tis if ti["state"] == "failed"]
    assert failed["try_number"] == 1, "a refusal does not retry"
    assert max(ti["try_number"] for ti in tis) == 2, "the cut download retried, and the retry did not count"
    counters = cluster.api("GET", "/variables", params={"variable_key_pattern": "veo_quota:day:%"})["variables"]
    assert [v["key"].rsplit(":", 1)[-1] for v in counters] == ["veo_capped"]
    assert '"used": 2' in counters[0]["value"], counters
