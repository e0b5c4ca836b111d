"""A failed Veo job's code and reason are kept on its ledger entry, where the Videos tab reads them."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import TaskDeferred

from tests.conftest import BASE_URL
from veo_provider.exceptions import VeoJobFailedError
from veo_provider.ledger import LEDGER_KEY
from veo_provider.models import TaskState, TaskStatus
from veo_provider.models.records import MAX_REASON
from veo_provider.operators.failures import record_failure
from veo_provider.operators.veo import VeoOperator
from veo_provider.ui.videos import TaskInstanceFacts, video_view

CALLBACK_EXTRA = {"callback_base_url": "https://airflow.example.com/veo", "callback_secret": "s" * 40}
FAILED_RECORD = {
    "id": "t-1",
    "response": {"success": False, "task_id": "t-1", "error": {"code": "forbidden", "message": "moderation"}},
}
RUNNING_RECORD = {"id": "t-1", "response": {"success": True, "task_id": "t-1", "data": [{"state": "running"}]}}


class Store:
    """The task state store's interface, in memory."""

    def __init__(self, **values):
        self.values = dict(values)

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value, **_):
        self.values[key] = value

    def delete(self, key):
        self.values.pop(key, None)


class BrokenStore(Store):
    def set(self, key, value, **_):
        raise ConnectionError("the Execution API is down")


def submitted(store_cls=Store):
    return store_cls(**{LEDGER_KEY: {"state": "submitted", "key": "k-1", "task_id": "t-1", "sent": {"prompt": "a"}}})


def op(**kw) -> VeoOperator:
    return VeoOperator(**{"task_id": "veo", "prompt": "a mug", "model": "veo3", "poll_interval": 0.1, **kw})


def failed_event(**kw):
    return {"status": "failed", "veo_task_id": "t-1", "source": "poll", "elapsed": 3, **kw}


def cb_ctx(store):
    from types import SimpleNamespace

    return {"task_state_store": store, "ti": SimpleNamespace(dag_id="d", run_id="r", task_id="veo", map_index=-1)}


@pytest.fixture
def api(veo_conn):
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def test_a_failed_poll_event_keeps_the_api_code_and_reason_on_the_ledger_entry_and_still_fails():
    store = submitted()
    with pytest.raises(VeoJobFailedError, match="generation_failed: the model refused"):
        op().execute_complete(
            {"task_state_store": store}, failed_event(error_code="generation_failed", error_message="the model refused")
        )
    entry = store.values[LEDGER_KEY]
    assert (entry["error_code"], entry["error_message"]) == ("generation_failed", "the model refused")
    assert (entry["state"], entry["key"], entry["task_id"], entry["sent"]) == (
        "submitted",
        "k-1",
        "t-1",
        {"prompt": "a"},
    )


def test_a_failed_job_read_after_a_callback_keeps_the_api_reason(api, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=FAILED_RECORD))
    store = submitted()
    wake = {"status": "callback", "source": "callback", "veo_task_id": "t-1", "submission_key": "k-1"}
    with pytest.raises(VeoJobFailedError, match="forbidden: moderation"):
        op().execute_complete(cb_ctx(store), wake)
    assert (store.values[LEDGER_KEY]["error_code"], store.values[LEDGER_KEY]["error_message"]) == (
        "forbidden",
        "moderation",
    )


def test_a_forged_failure_in_a_callback_body_is_not_recorded(api, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING_RECORD))
    store = submitted()
    forged = {"status": "failed", "source": "callback", "veo_task_id": "t-1", "submission_key": "k-1",
              "error_code": "forbidden", "error_message": "FORGED", "deadline": 4_000_000_000.0}  # fmt: skip
    with pytest.raises(TaskDeferred):
        op().execute_complete(cb_ctx(store), forged)
    assert "error_code" not in store.values[LEDGER_KEY] or store.values[LEDGER_KEY]["error_code"] is None


def test_a_store_that_cannot_be_written_does_not_hide_the_api_reason():
    with pytest.raises(VeoJobFailedError, match="generation_failed: the model refused"):
        op().execute_complete(
            {"task_state_store": submitted(BrokenStore)},
            failed_event(error_code="generation_failed", error_message="the model refused"),
        )


def test_without_a_task_state_store_the_task_fails_with_the_reason():
    with pytest.raises(VeoJobFailedError, match="x: y"):
        op().execute_complete({}, failed_event(error_code="x", error_message="y"))


def test_another_jobs_failure_does_not_touch_this_entry():
    store = submitted()
    record_failure({"task_state_store": store}, TaskStatus(state=TaskState.FAILED, veo_task_id="t-9", error_code="x"))
    assert store.values[LEDGER_KEY].get("error_code") is None


def test_a_status_that_is_not_a_failure_records_nothing():
    store = submitted()
    record_failure({"task_state_store": store}, TaskStatus(state=TaskState.RUNNING, veo_task_id="t-1"))
    assert store.values[LEDGER_KEY] == submitted().values[LEDGER_KEY]


def test_a_huge_reason_is_cut_on_the_entry():
    store = submitted()
    status = TaskStatus(state=TaskState.FAILED, veo_task_id="t-1", error_code="x", error_message="y" * 100_000)
    record_failure({"task_state_store": store}, status)
    assert store.values[LEDGER_KEY]["error_message"] == "y" * MAX_REASON


def test_the_recorded_failure_is_what_the_videos_card_shows():
    store = submitted()
    with pytest.raises(VeoJobFailedError):
        op().execute_complete({"task_state_store": store}, failed_event(error_code="x", error_message="y"))
    facts = TaskInstanceFacts(task_id="veo", map_index=-1, state="failed", ledger=store.values[LEDGER_KEY])
    view = video_view("d", "r", facts, datetime.now(timezone.utc), "/stream")
    assert (view.error_code, view.error_message, view.veo_task_id) == ("x", "y", "t-1")
