"""The spending cap on a real Airflow (`airflow dags test`: the count runs in-process, SQLite)."""

from __future__ import annotations

import configparser
import json
from datetime import datetime, timezone

import pytest
from cryptography.fernet import Fernet

pytestmark = pytest.mark.integration


def _counters(result, kind: str) -> dict[str, list[str]]:
    """The cap's Variables (encrypted with the Airflow home's Fernet key, as every Variable is)."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(result.db.with_name("airflow.cfg"))
    fernet = Fernet(cfg["core"]["fernet_key"].encode())
    rows = result.query("SELECT key, val, is_encrypted FROM variable WHERE key LIKE ?", f"veo_quota:{kind}:%")
    return {key: json.loads(fernet.decrypt(val.encode()) if enc else val)["keys"] for key, val, enc in rows}


def test_a_daily_limit_of_two_pays_two_of_three_mapped_tasks_and_retries_never_count(dags_test, emulator):
    emulator.set_faults(download_cut={"times": 1})  # one paid task fails its download and retries
    result = dags_test("veo_it_capped", daily_job_limit=2, max_retries=1)
    assert emulator.jobs_created == 2, result.output[-4000:]
    states = sorted(state for _, state, _ in result.tries("veo_it_capped", "generate"))
    assert states == ["failed", "success", "success"], result.output[-4000:]
    assert max(tries for *_, tries in result.tries("veo_it_capped", "generate")) == 2, "the cut download retried"
    assert result.says("Spending cap reached, nothing was sent to the Veo API: daily_job_limit=2")
    assert result.says("'daily_job_limit' extra of the Veo connection 'veo_default'")
    today = datetime.now(timezone.utc).date().isoformat()
    assert {k: len(v) for k, v in _counters(result, "day").items()} == {f"veo_quota:day:{today}:veo_default": 2}

    again = dags_test("veo_it_capped", daily_job_limit=2)
    assert emulator.jobs_created == 2, "the day's two are spent: a new run pays nothing"
    assert [s for _, s, _ in again.tries("veo_it_capped", "generate")] == ["failed"] * 3


def test_max_jobs_per_dag_run_pays_one_job_per_run(dags_test, emulator):
    result = dags_test("veo_it_run_capped")
    assert emulator.jobs_created == 1, result.output[-4000:]
    assert result.says("max_jobs_per_dag_run=1 allows 1 paid submission(s) for DAG run veo_it_run_capped/")
    assert [len(keys) for keys in _counters(result, "run").values()] == [1]
    assert dags_test("veo_it_run_capped") and emulator.jobs_created == 2, "a new run has its own count"
