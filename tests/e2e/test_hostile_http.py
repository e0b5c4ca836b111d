"""Hostile requests against Airflow's real api-server: every one 4xx, nothing changed, still healthy."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CALLBACK_SECRET
from tests.reliability.hostile_http import db_snapshot, hostile_burst

pytestmark = pytest.mark.e2e


def test_hostile_callbacks_and_cap_requests_on_the_real_api_server_change_nothing(cluster, emulator):
    run = cluster.trigger("veo_e2e_callback")
    assert cluster.wait_for_run("veo_e2e_callback", run) == "success"
    signed = [(job.callback_url, job.task_id) for job in emulator.jobs if job.callback_url]
    assert signed, "the callback run's job carries a signed URL"
    db = cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    before = db_snapshot(db)
    tally = hostile_burst(cluster.url, signed, CALLBACK_SECRET, seed=9)
    assert tally.sent >= 15 and tally.accepted == 0 and tally.bad == [], tally
    assert set(tally.statuses) <= {400, 401, 403, 404, 405, 409, 410, 413, 415}, tally.statuses
    assert db_snapshot(db) == before, "a hostile request changed a task, the state store or a counter"
    assert tally.healthy_after
