"""The cross-process shapes: ledger entry (with its reconcile step), stored delivery, trigger event."""

from __future__ import annotations

import pytest

from veo_provider.models import LedgerEntry, StoredCallback, TaskRecord, TaskState, VeoEvent, decide_state
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH
from veo_provider.testing.payloads import DONE, VIDEO_URL

KEY = "k" * 32


def record(callback_url: str | None, job: str = "job-1") -> TaskRecord:
    request = {"action": "text2video", "prompt": "p"}
    if callback_url is not None:
        request["callback_url"] = callback_url
    return TaskRecord.model_validate({"id": job, "trace_id": "tr-9", "request": request})


def submitting() -> LedgerEntry:
    return LedgerEntry(state="submitting", key=KEY, endpoint="videos", conn_id="veo_default")


def test_ledger_entry_keeps_the_stored_key_names_of_deployed_versions() -> None:
    old = {"state": "submitted", "key": KEY, "task_id": "job-1", "trace_id": None, "endpoint": "videos", "at": "x"}
    entry = LedgerEntry.model_validate(old)
    assert entry.veo_task_id == "job-1" and entry.conn_id is None
    assert entry.dump()["task_id"] == "job-1" and "veo_task_id" not in entry.dump()


def test_reconcile_adopts_only_a_job_whose_callback_url_carries_our_key() -> None:
    ours = submitting().reconcile(record(f"https://af.example/veo/callback?dag_id=d&key={KEY}&sig_token=s"))
    assert ours is not None and ours.state == "submitted" and ours.veo_task_id == "job-1" and ours.trace_id == "tr-9"


@pytest.mark.parametrize(
    "url",
    [
        None,  # a job submitted without a callback (poll mode, another client)
        "https://af.example/veo/callback?key=someone-else",
        f"https://af.example/veo/callback?key={KEY}&key=other",  # which one?
        f"https://af.example/veo/callback?xkey={KEY}",
        "",
    ],
)
def test_reconcile_refuses_a_job_not_created_by_this_submission(url: str | None) -> None:
    assert submitting().reconcile(record(url)) is None


def test_reconcile_never_changes_a_submitted_entry() -> None:
    entry = submitting().submitted("job-0", None)
    assert entry.reconcile(record(f"https://x/cb?key={KEY}")) is None


def test_a_stored_callback_keeps_the_claimed_state_and_a_hash_never_the_body() -> None:
    body = b'{"success": true}'
    d = StoredCallback.of(KEY, body, "job-1", decide_state(DONE))
    assert d.claimed_state == "succeeded" and d.claims_done
    assert VIDEO_URL not in str(d.dump()) and d.dump()["task_id"] == "job-1"
    assert d.same_as(StoredCallback.of(KEY, body, "job-1", decide_state(DONE)))
    assert not d.same_as(StoredCallback.of(KEY, b"{}", "job-1", decide_state(DONE)))
    running = StoredCallback.of(KEY, b"{}", "job-1", decide_state({"task_id": "job-1", "data": [{"state": "running"}]}))
    assert running.claimed_state == "running" and not running.claims_done


def test_a_stored_callback_ignores_unknown_fields_and_garbage() -> None:
    old = {"key": KEY, "task_id": "job-1", "received_at": "t", "body": DONE}
    assert StoredCallback.read(old) is not None
    assert StoredCallback.read({"key": KEY}) is None and StoredCallback.read("x") is None


def test_poll_event_round_trips_and_carries_the_deadline() -> None:
    payload = VeoEvent.build(
        "success", source="poll", veo_task_id="job-1", submission_key=KEY, status=decide_state(DONE), deadline=5.0
    )
    ev = VeoEvent.read(payload)
    assert ev.deadline == 5.0 and ev.job_status().state is TaskState.SUCCEEDED
    assert ev.job_status().video_url == VIDEO_URL


def test_callback_event_is_a_wake_up_that_carries_only_ids() -> None:
    new = VeoEvent.read(VeoEvent.build("callback", source="callback", veo_task_id="job-1", submission_key=KEY))
    assert new.status == "callback" and new.result is None
    assert (new.veo_task_id, new.submission_key) == ("job-1", KEY)


def test_failed_event_reports_the_api_reason() -> None:
    failed = decide_state({"success": False, "task_id": "j", "error": {"code": "forbidden", "message": "moderation"}})
    ev = VeoEvent.read(VeoEvent.build("failed", source="poll", veo_task_id="j", submission_key=None, status=failed))
    status = ev.job_status()
    assert (
        status.state is TaskState.FAILED and status.error_code == "forbidden" and status.error_message == "moderation"
    )


def test_trigger_classpath_is_the_trigger_class() -> None:
    from veo_provider.triggers.veo import VeoTrigger

    assert f"{VeoTrigger.__module__}.{VeoTrigger.__qualname__}" == VEO_TRIGGER_CLASSPATH
    assert VeoTrigger(conn_id="c", veo_task_id="t", deadline=1.0).serialize()[0] == VEO_TRIGGER_CLASSPATH
