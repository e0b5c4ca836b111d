"""Defects the fault campaign found in veo_provider, each pinned by a test named after its seed.

Rerun a seed on a real cluster with ``python -m tests.reliability.campaign --seed N --runs 1``.
"""

from __future__ import annotations

import pytest
import respx
from airflow.providers.common.compat.sdk import TaskDeferred

from tests.support import BASE_URL, op
from veo_provider.ledger import LEDGER_KEY
from veo_provider.operators import resume
from veo_provider.testing.fakes import FakeStore


class UnreachableStore(FakeStore):
    """A task state store whose API is down for the next ``outage`` writes of a paid job's id."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage

    def set(self, key, value, **kw):
        if key == LEDGER_KEY and value.get("task_id") and self.outage > 0:
            self.outage -= 1
            raise RuntimeError("API_SERVER_ERROR: [Errno 111] Connection refused")
        super().set(key, value, **kw)


@pytest.fixture
def naps(monkeypatch):
    """Sleeps that take no time: they only move the clock the patience is measured on."""
    slept: list[float] = []
    start = resume.time.monotonic()
    monkeypatch.setattr(resume.time, "sleep", slept.append)
    monkeypatch.setattr(resume.time, "monotonic", lambda: start + sum(slept))
    return slept


def test_seed_1101_a_paid_job_id_is_recorded_through_an_api_server_restart(veo_conn, naps, caplog):
    """Seed 1101 (a run with no fault of its own, during another run's api-server restart): the job was
    created and answered, but writing its id to the ledger failed while the api-server restarted, so
    the try died with the ledger at ``submitting``; its callback was lost in the same outage, and the
    later tries waited for a callback that never came: the task failed while its job succeeded."""
    store = UnreachableStore(outage=4)
    with respx.mock(base_url=BASE_URL) as api:
        submit = api.post("/veo/videos").respond(json={"task_id": "t-1"})
        with pytest.raises(TaskDeferred) as deferred:
            op().execute({"task_state_store": store})
    assert store.values[LEDGER_KEY]["state"] == "submitted"
    assert store.values[LEDGER_KEY]["task_id"] == "t-1"
    assert deferred.value.trigger.veo_task_id == "t-1"
    assert naps == [1.0, 2.0, 4.0, 8.0], "backing off while the store is unreachable"
    assert "Could not record Veo job t-1 (submission key" in caplog.text, "the id is in the log meanwhile"
    assert submit.call_count == 1, "paid once"


def test_seed_1101_gives_up_after_its_patience_and_says_which_job(veo_conn, naps, caplog):
    store = UnreachableStore(outage=1000)
    with respx.mock(base_url=BASE_URL) as api:
        api.post("/veo/videos").respond(json={"task_id": "t-1"})
        with pytest.raises(RuntimeError, match="Connection refused"):
            op().execute({"task_state_store": store})
    assert sum(naps) <= resume.RECORD_PATIENCE
    assert store.values[LEDGER_KEY]["state"] == "submitting"
    assert "Could not record Veo job t-1" in caplog.text
