"""VeoOperator without a database: validation, the exactly-once ledger, deferral, results."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from tests.support import ctx, op
from veo_provider.exceptions import VeoJobFailedError, VeoModerationError
from veo_provider.ledger import LEDGER_KEY
from veo_provider.models import XCOM_KEYS
from veo_provider.operators.veo import VeoOperator
from veo_provider.resume_hold import RESUME_HOLD
from veo_provider.testing.fakes import FakeStore, RecordingTI
from veo_provider.testing.payloads import DONE, FAILED, RECORD_DONE, RUNNING
from veo_provider.triggers.veo import VeoTrigger

# ------------------------------------------------------------------------ bad input, no HTTP


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": None}, "text2video needs a prompt"),
        ({"action": "image2video"}, "image2video needs 1 or 2 image_urls (got 0)"),
        ({"action": "image2video", "image_urls": ["a", "b", "c"]}, "image_urls[0] must be an http(s) URL"),
        ({"action": "get_1080p", "prompt": None}, "get1080p needs video_id"),
        ({"model": "Veo 3"}, "model 'Veo 3' is not a Veo model: did you mean 'veo3'?"),
        ({"model": "veo-3"}, "did you mean 'veo3'?"),
        ({"model": "veo31fast"}, "did you mean 'veo31-fast'?"),
        ({"model": "my model!"}, "model 'my model!' is not a model name"),
        ({"prompt": "x" * 5001}, "prompt is 5,001 characters, more than the 5,000"),
        (
            {"endpoint": "upsample", "prompt": "x", "model": None, "video_id": "v"},
            "prompt not taken by endpoint 'upsample'",
        ),
        ({"endpoint": "nope"}, "endpoint 'nope' is unknown"),
        ({"extra_body": {"callback_url": "ftp://x"}}, "callback_url must be an http(s) URL"),
    ],
)
def test_bad_input_fails_before_any_http(api, store, kwargs, message):
    route = api.route()
    with pytest.raises(AirflowFailException) as info:
        op(**kwargs).execute(ctx(store))
    assert message in str(info.value)
    assert route.call_count == 0 and store.writes == []


def test_bad_operator_arguments_fail_at_parse_time():
    with pytest.raises(ValueError, match="wait_mode 'hook' is unknown"):
        op(wait_mode="hook")
    with pytest.raises(ValueError, match="on_uncertain_submission"):
        op(on_uncertain_submission="maybe")


def test_all_user_inputs_are_templated():
    assert {
        "prompt",
        "image_urls",
        "video_id",
        "model",
        "action",
        "resolution",
        "aspect_ratio",
        "extra_body",
        "output_path",
        "translation",
        "motion_type",
        "image_mask",
        "endpoint",
    } <= set(VeoOperator.template_fields)


# ------------------------------------------------------------------------ submission + ledger


def test_fresh_submit_records_the_ledger_and_defers(api, store):
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1", "trace_id": "tr"}))
    with pytest.raises(TaskDeferred) as info:
        op(extra_body={"duration": 8}).execute(ctx(store))
    body = json.loads(route.calls.last.request.content)
    assert body == {"action": "text2video", "model": "veo3", "prompt": "a mug", "duration": 8, "async": True}
    states = [v["state"] for k, v in store.writes if k == LEDGER_KEY]
    assert states == ["submitting", "submitted"], "the key is written before the paid POST"
    assert store.values[LEDGER_KEY]["task_id"] == "t-1"
    trig = info.value.trigger
    assert isinstance(trig, VeoTrigger) and trig.veo_task_id == "t-1" and info.value.method_name == "execute_complete"
    assert trig.submission_key == store.values[LEDGER_KEY]["key"]


def test_retry_resumes_a_running_job_without_paying(api, store):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k", "task_id": "t-1"}
    post = api.post("/veo/videos")
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
    with pytest.raises(TaskDeferred) as info:
        op().execute(ctx(store))
    assert post.call_count == 0 and info.value.trigger.veo_task_id == "t-1"


def test_retry_finishes_a_succeeded_job_without_paying(api, store, tmp_path):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k", "task_id": "t-1"}
    post = api.post("/veo/videos")
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json={"id": "t-1", "response": DONE}))
    with respx.mock(assert_all_called=False) as cdn:
        cdn.get("https://cdn.example/v-1.mp4").mock(return_value=httpx.Response(200, content=b"mp4"))
        cdn.route(host="veo.test").pass_through()
        result = op(output_path=str(tmp_path / "out.mp4")).execute(ctx(store))
    assert post.call_count == 0
    assert result["state"] == "succeeded" and result["video_id"] == "v-1"
    assert (tmp_path / "out.mp4").read_bytes() == b"mp4" and result["output_path"] == str(tmp_path / "out.mp4")


def test_retry_after_an_api_side_failure_submits_a_new_job(api, store):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k", "task_id": "t-1"}
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=FAILED))
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-2"}))
    with pytest.raises(TaskDeferred) as info:
        op().execute(ctx(store))
    assert post.call_count == 1 and info.value.trigger.veo_task_id == "t-2"
    assert store.values[LEDGER_KEY]["task_id"] == "t-2"


def test_reuse_existing_job_false_always_submits(api, store):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k", "task_id": "t-1"}
    get = api.post("/veo/tasks")
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-2"}))
    with pytest.raises(TaskDeferred):
        op(reuse_existing_job=False).execute(ctx(store))
    assert post.call_count == 1 and get.call_count == 0


def test_uncertain_earlier_submission_fails_clearly_without_paying(api, store):
    store.values[LEDGER_KEY] = {"state": "submitting", "key": "k-123", "at": "2025-01-01T00:00:00"}
    post = api.post("/veo/videos")
    with pytest.raises(AirflowFailException, match=r"k-123.*on_uncertain_submission='resubmit'") as info:
        op().execute(ctx(store))
    assert "may have created a Veo job" in str(info.value) and post.call_count == 0


def test_uncertain_earlier_submission_can_be_resubmitted_on_request(api, store):
    store.values[LEDGER_KEY] = {"state": "submitting", "key": "k-123"}
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-2"}))
    with pytest.raises(TaskDeferred):
        op(on_uncertain_submission="resubmit").execute(ctx(store))
    assert post.call_count == 1 and store.values[LEDGER_KEY]["key"] != "k-123"


def test_lost_submission_answer_keeps_the_ledger_and_fails_without_retry(api, store):
    post = api.post("/veo/videos").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(AirflowFailException, match="not resent"):
        op().execute(ctx(store))
    assert post.call_count == 1
    assert store.values[LEDGER_KEY]["state"] == "submitting", "the next try must know a job may exist"


def test_refused_submission_forgets_the_ledger(api, store):
    api.post("/veo/videos").mock(
        return_value=httpx.Response(403, json={"error": {"code": "forbidden", "message": "moderation: refused"}})
    )
    with pytest.raises(VeoModerationError, match="moderation: refused"):
        op().execute(ctx(store))
    assert LEDGER_KEY not in store.values


def test_wait_for_completion_false_returns_after_submission(api, store):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1", "trace_id": "tr"}))
    result = op(wait_for_completion=False).execute(ctx(store))
    assert result["task_id"] == "t-1" and result["state"] == "pending" and result["trace_id"] == "tr"
    assert tuple(result) == XCOM_KEYS


def test_not_deferrable_waits_in_the_worker_with_the_same_loop(api, store):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    api.post("/veo/tasks").mock(
        side_effect=[
            httpx.Response(200, json={"items": [RUNNING]}),
            httpx.Response(200, json={"items": [{"id": "t-1", "response": DONE}]}),
        ]
    )
    result = op(deferrable=False).execute(ctx(store))
    assert result["state"] == "succeeded" and result["video_url"] == "https://cdn.example/v-1.mp4"


def test_without_a_task_state_store_it_still_works(api):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(TaskDeferred):
        op().execute({})


def test_a_retry_that_begins_with_an_earlier_trys_timeout_event_starts_afresh_on_the_same_job(api, store):
    """Airflow 3.0 keeps a failed try's ``next_method``/``next_kwargs``: its retry "resumes" with that event."""
    from types import SimpleNamespace

    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k", "task_id": "t-1"}
    post = api.post("/veo/videos")
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
    retry = {**ctx(store), "ti": SimpleNamespace(try_number=2)}
    with pytest.raises(TaskDeferred) as info:
        op().execute_complete(retry, event("timeout", last_state="running", deferred_in_try=1))
    assert post.call_count == 0 and info.value.trigger.veo_task_id == "t-1", "waits again on the paid job"
    assert info.value.trigger.try_number == 2, "this try's own wait says whose it is"
    with pytest.raises(AirflowException, match="did not finish within"):  # this try's own event counts
        op().execute_complete(retry, event("timeout", last_state="running", deferred_in_try=2))


# ------------------------------------------------------------------------ execute_complete


def event(status, **kw):
    return {"status": status, "veo_task_id": "t-1", "source": "poll", "elapsed": 3, **kw}


def test_success_event_becomes_the_documented_xcom(api):
    result = op().execute_complete({}, event("success", result=DONE, trace_id="tr-1"))
    assert tuple(result) == XCOM_KEYS
    assert result == {
        "task_id": "t-1",
        "video_id": "v-1",
        "video_url": "https://cdn.example/v-1.mp4",
        "state": "succeeded",
        "trace_id": "tr-1",
        "created_at": "2025-07-25 16:07:43",
        "complete_at": "2025-07-25 16:10:28",
        "model": "veo3",
        "action": "text2video",  # what was sent, not the argument left at its default
        "output_path": None,
        "prompt": "a mug",
        "resolution": None,
    }


def test_failed_event_fails_with_the_api_code_and_reason_without_retries():
    with pytest.raises(VeoJobFailedError, match="generation_failed: the model refused") as info:
        op().execute_complete({}, event("failed", error_code="generation_failed", error_message="the model refused"))
    assert isinstance(info.value, AirflowFailException)


def test_timeout_event_fails_retryably_and_says_a_retry_resumes():
    with pytest.raises(AirflowException, match="resumes waiting on the same job") as info:
        op().execute_complete({}, event("timeout", last_state="running"))
    assert not isinstance(info.value, AirflowFailException)


# ------------------------------------------------------------------------ callback mode

CALLBACK_EXTRA = {"callback_base_url": "https://airflow.example.com/veo", "callback_secret": "s" * 40}


def cb_ctx(store):
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="d", run_id="manual__1", task_id="veo", map_index=2)
    return {"task_state_store": store, "ti": ti}


def test_callback_mode_without_its_settings_fails_before_any_http(api, store):
    route = api.route()
    with pytest.raises(AirflowFailException, match="needs 'callback_base_url' and 'callback_secret'"):
        op(wait_mode="callback").execute(cb_ctx(store))
    assert route.call_count == 0 and store.writes == []


def test_auto_mode_sends_a_signed_callback_url_and_waits_with_the_safety_net(api, store, veo_conn):
    import time
    from urllib.parse import parse_qs, urlsplit

    from veo_provider.callbacks.signing import verify_callback

    veo_conn(**CALLBACK_EXTRA)
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(TaskDeferred) as info:
        op().execute(cb_ctx(store))
    body = json.loads(route.calls.last.request.content)
    assert "async" not in body
    url = urlsplit(body["callback_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://airflow.example.com/veo/callback"
    target = verify_callback({k: v[0] for k, v in parse_qs(url.query).items()}, ["s" * 40])
    assert (target.dag_id, target.run_id, target.task_id, target.map_index) == ("d", "manual__1", "veo", 2)
    assert target.submission_key == store.values[LEDGER_KEY]["key"] and target.conn_id == "veo_default"
    trig = info.value.trigger
    assert trig.wait_mode == "callback" and trig.poll_interval == 300
    assert RESUME_HOLD - 5 < trig.first_check_at - time.time() <= RESUME_HOLD  # Airflow's resume race


def test_callback_mode_lost_answer_waits_for_the_callback_instead_of_failing(api, store, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    post = api.post("/veo/videos").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(TaskDeferred) as info:
        op().execute(cb_ctx(store))
    assert post.call_count == 1
    assert info.value.trigger.veo_task_id is None
    assert info.value.trigger.submission_key == store.values[LEDGER_KEY]["key"]
    assert store.values[LEDGER_KEY]["state"] == "submitting"


def test_callback_mode_retry_of_an_uncertain_submission_waits_for_its_callback(api, store, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    store.values[LEDGER_KEY] = {"state": "submitting", "key": "k-9"}
    post = api.post("/veo/videos")
    with pytest.raises(TaskDeferred) as info:
        op().execute(cb_ctx(store))
    assert post.call_count == 0 and info.value.trigger.submission_key == "k-9"


def test_callback_for_an_older_submission_is_ignored(api, store, veo_conn):
    from veo_provider.ledger import STORED_CALLBACK_KEY

    veo_conn(**CALLBACK_EXTRA)
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k-2", "task_id": "t-1"}
    store.values[STORED_CALLBACK_KEY] = {"key": "k-1", "task_id": "t-0", "claimed_state": "succeeded"}
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
    with pytest.raises(TaskDeferred):
        op().execute(cb_ctx(store))


def test_no_callback_for_a_lost_submission_explains_what_is_uncertain():
    event = {"status": "timeout", "veo_task_id": None, "submission_key": "k-7", "source": "poll"}
    with pytest.raises(AirflowException, match=r"k-7.*on_uncertain_submission='resubmit'"):
        op().execute_complete({}, event)


def test_returning_right_after_submission_does_not_ask_for_a_callback(api, store, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    op(wait_for_completion=False).execute(cb_ctx(store))
    body = json.loads(route.calls.last.request.content)
    assert body["async"] is True and "callback_url" not in body


def test_retry_with_the_same_request_resumes_but_a_changed_request_pays_for_a_new_job(api, store):
    post = api.post("/veo/videos").mock(
        side_effect=[httpx.Response(200, json={"task_id": "t-1"}), httpx.Response(200, json={"task_id": "t-2"})]
    )
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
    with pytest.raises(TaskDeferred):
        op().execute(ctx(store))
    with pytest.raises(TaskDeferred) as same:
        op().execute(ctx(store))  # a retry of the same request: resume t-1
    assert post.call_count == 1 and same.value.trigger.veo_task_id == "t-1"
    with pytest.raises(TaskDeferred) as changed:
        op(prompt="a different mug").execute(ctx(store))  # the DAG was edited, then the task cleared
    assert post.call_count == 2 and changed.value.trigger.veo_task_id == "t-2"


# ------------------------------ callbacks wake, the API decides (a leaked URL can only wake a task)


def wake(**kw):
    """What the receiver resumes a task with (ids only)."""
    return {"status": "callback", "source": "callback", "veo_task_id": "t-1", "submission_key": "k-1", **kw}


def submitted_store(**extra) -> FakeStore:
    return FakeStore(**{LEDGER_KEY: {"state": "submitted", "key": "k-1", "task_id": "t-1", **extra}})


def test_a_callback_wake_reads_the_job_once_and_downloads_the_url_of_that_read(api, tmp_path, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    read = api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
    with respx.mock(assert_all_called=False) as mock:
        cdn = mock.get("https://cdn.example/v-1.mp4").mock(return_value=httpx.Response(200, content=b"mp4"))
        mock.route(host="veo.test").pass_through()
        result = op(output_path=str(tmp_path / "v.mp4")).execute_complete(cb_ctx(submitted_store()), wake())
    assert read.call_count == 1 and cdn.call_count == 1
    assert result["video_url"] == "https://cdn.example/v-1.mp4" and (tmp_path / "v.mp4").read_bytes() == b"mp4"


@pytest.mark.parametrize(
    "forged",
    [
        wake(),
        # What earlier versions resumed with: the callback's own (here forged) body.
        {**wake(), "status": "failed", "error_code": "forbidden", "error_message": "FORGED text"},
        {**wake(), "status": "success", "result": {**DONE, "data": [{"id": "x", "video_url": "https://evil/x.mp4"}]}},
    ],
)
def test_a_forged_callback_while_the_job_runs_defers_again_on_the_same_deadline(api, veo_conn, forged, caplog):
    """A forged failure used to fail the task for good; a forged success failed it too."""
    veo_conn(**CALLBACK_EXTRA)
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RUNNING))
    with pytest.raises(TaskDeferred) as info:
        op().execute_complete(cb_ctx(submitted_store()), {**forged, "deadline": 4_000_000_000.0})
    trig = info.value.trigger
    assert (trig.veo_task_id, trig.submission_key, trig.deadline) == ("t-1", "k-1", 4_000_000_000.0)
    assert "FORGED" not in caplog.text and "evil" not in caplog.text


def test_a_callback_for_a_finished_failed_job_fails_with_the_api_reason(api, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=FAILED))
    with pytest.raises(VeoJobFailedError, match="x: y"):
        op().execute_complete(cb_ctx(submitted_store()), wake())


def test_a_callback_naming_another_job_is_ignored_without_a_read(api, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    read = api.post("/veo/tasks")
    with pytest.raises(TaskDeferred) as info:
        op().execute_complete(cb_ctx(submitted_store()), wake(veo_task_id="t-other"))
    assert read.call_count == 0 and info.value.trigger.veo_task_id == "t-1"


def lost_store() -> FakeStore:
    return FakeStore(**{LEDGER_KEY: {"state": "submitting", "key": "k-1", "conn_id": "veo_default"}})


def claimed_record(key: str, response: dict | None = DONE) -> dict:
    url = f"https://airflow.example.com/veo/callback?dag_id=d&key={key}&sig_token=s"
    return {"id": "t-1", "request": {"action": "text2video", "callback_url": url}, "response": response}


def test_a_lost_submission_adopts_the_claimed_job_only_after_the_api_confirms_it(api, veo_conn):
    veo_conn(**CALLBACK_EXTRA)
    store = lost_store()
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=claimed_record("k-1")))
    result = op().execute_complete(cb_ctx(store), wake())
    assert result["state"] == "succeeded" and result["task_id"] == "t-1"
    assert store.values[LEDGER_KEY]["state"] == "submitted" and store.values[LEDGER_KEY]["task_id"] == "t-1"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json=claimed_record("someone-elses-key")),
        httpx.Response(200, json={"id": "t-1", "request": {"action": "text2video"}, "response": DONE}),
        httpx.Response(404, json={"error": {"code": "no_api", "message": "unknown"}}),
    ],
)
def test_a_lost_submission_ignores_a_job_the_api_does_not_show_as_ours(api, veo_conn, answer):
    """Reconciliation used to write the body's task_id into the ledger unverified."""
    veo_conn(**CALLBACK_EXTRA)
    store = lost_store()
    api.post("/veo/tasks").mock(return_value=answer)
    with pytest.raises(TaskDeferred) as info:
        op().execute_complete(cb_ctx(store), wake(deadline=4_000_000_000.0))
    assert info.value.trigger.veo_task_id is None and info.value.trigger.deadline == 4_000_000_000.0
    assert store.values[LEDGER_KEY] == {"state": "submitting", "key": "k-1", "conn_id": "veo_default"}


def test_a_retry_of_a_lost_submission_adopts_its_stored_callback_after_the_api_confirms(api, veo_conn):
    from veo_provider.ledger import STORED_CALLBACK_KEY

    veo_conn(**CALLBACK_EXTRA)
    store = lost_store()
    store.values[STORED_CALLBACK_KEY] = {"key": "k-1", "task_id": "t-1", "claimed_state": "succeeded"}
    post = api.post("/veo/videos")
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=claimed_record("k-1", RUNNING["response"])))
    with pytest.raises(TaskDeferred) as info:
        op().execute(cb_ctx(store))
    assert post.call_count == 0 and info.value.trigger.veo_task_id == "t-1"


def test_a_callback_that_came_before_the_deferral_is_checked_with_one_read(api, veo_conn):
    from veo_provider.ledger import STORED_CALLBACK_KEY

    veo_conn(**CALLBACK_EXTRA)
    store = FakeStore()

    def submit(request):  # the job calls back before the task gets to defer
        key = store.values[LEDGER_KEY]["key"]
        store.values[STORED_CALLBACK_KEY] = {"key": key, "task_id": "t-1", "claimed_state": "succeeded"}
        return httpx.Response(200, json={"task_id": "t-1"})

    api.post("/veo/videos").mock(side_effect=submit)
    reads = api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
    result = op().execute(cb_ctx(store))
    assert result["state"] == "succeeded" and reads.call_count == 1


# ---------------------------------------------------------------- recovery without a person


def test_a_submission_that_never_reached_the_api_clears_the_ledger_and_is_retryable(api, store, veo_conn):
    """A connect failure used to be 'uncertain': no retry, and a ledger someone had to clear by hand."""
    veo_conn(max_retries=1)
    post = api.post("/veo/videos").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(AirflowException) as info:
        op().execute(ctx(store))
    assert not isinstance(info.value, AirflowFailException), "Airflow's retry must submit it again"
    assert post.call_count == 1 and LEDGER_KEY not in store.values
    post.mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(TaskDeferred) as retry:
        op().execute(ctx(store))
    assert retry.value.trigger.veo_task_id == "t-1" and post.call_count == 2


def test_a_ledger_job_unknown_to_the_api_fails_clearly_by_default(api, store):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k-1", "task_id": "t-gone"}
    post = api.post("/veo/videos")
    api.post("/veo/tasks").mock(return_value=httpx.Response(404, json={"error": {"code": "no_api"}}))
    with pytest.raises(AirflowFailException, match=r"t-gone.*unknown to the API \(404\).*on_uncertain_submission"):
        op().execute(ctx(store))
    assert post.call_count == 0


def test_a_ledger_job_unknown_to_the_api_is_resubmitted_when_asked(api, store):
    store.values[LEDGER_KEY] = {"state": "submitted", "key": "k-1", "task_id": "t-gone"}
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-2"}))
    api.post("/veo/tasks").mock(return_value=httpx.Response(404, json={"error": {"code": "no_api"}}))
    with pytest.raises(TaskDeferred) as info:
        op(on_uncertain_submission="resubmit").execute(ctx(store))
    assert post.call_count == 1 and info.value.trigger.veo_task_id == "t-2"


# ------------------------------------------------------------ execution_timeout across deferral


def timed_ctx(store, started_ago: float):
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    start = datetime.now(timezone.utc) - timedelta(seconds=started_ago)
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="veo", map_index=-1, start_date=start)
    return {"task_state_store": store, "ti": ti}, start.timestamp()


def test_execution_timeout_caps_the_wait_of_the_deferred_try(api, store):
    """Airflow 3.3 ignores execution_timeout while deferred (apache/airflow#69678)."""
    from datetime import timedelta

    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    context, start = timed_ctx(store, started_ago=5)
    with pytest.raises(TaskDeferred) as info:
        op(execution_timeout=timedelta(seconds=8), timeout=3600).execute(context)
    assert info.value.trigger.deadline == pytest.approx(start + 8)
    assert info.value.timeout.total_seconds() <= 3 + 60 + 1


def test_reaching_execution_timeout_is_airflows_task_timeout_so_retries_apply(store):
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    context, start = timed_ctx(store, started_ago=8)
    with pytest.raises(AirflowTaskTimeout, match=r"execution_timeout.*same job"):
        op(execution_timeout=timedelta(seconds=8)).execute_complete(context, event("timeout", deadline=start + 8))
    with pytest.raises(AirflowException, match=r"timeout=3600s") as plain:
        op(execution_timeout=timedelta(hours=5)).execute_complete(context, event("timeout", deadline=start + 3600))
    assert not isinstance(plain.value, AirflowFailException)


def test_without_execution_timeout_the_wait_lasts_timeout(api, store):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    context, _ = timed_ctx(store, started_ago=5)
    with pytest.raises(TaskDeferred) as info:
        op(timeout=600).execute(context)
    import time

    assert info.value.trigger.deadline == pytest.approx(time.time() + 600, abs=5)


# ------------------------------------------------------------------------- retries by default


def test_veo_tasks_retry_by_default_because_a_retry_is_free():
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import DAG

    from veo_provider.sensors.veo import VeoSensor

    assert op().retries == 2 and op().retry_delay == timedelta(seconds=30)
    assert VeoSensor(task_id="s", veo_task_id="t").retries == 2
    assert op(retries=0).retries == 0
    with DAG("d_default_args", schedule=None, default_args={"retries": 0}):
        assert op().retries == 0, "default_args win over our default"
    with DAG("d_mapped", schedule=None):
        mapped = VeoOperator.partial(task_id="m", model="veo3").expand(prompt=["a", "b"])
        assert mapped.retries == 2
    with DAG("d_mapped_default_args", schedule=None, default_args={"retries": 5}):
        mapped = VeoOperator.partial(task_id="m", model="veo3").expand(prompt=["a", "b"])
        assert mapped.retries == 5


# ------------------------------- say only what is true, and fail before paying for what cannot land


def test_the_job_id_is_pushed_at_submission_and_the_video_keys_at_the_end(api, store):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    api.post("/veo/tasks").mock(return_value=httpx.Response(200, json=RECORD_DONE))
    ti = RecordingTI()
    with pytest.raises(TaskDeferred):
        op(resolution="1080p").execute({"task_state_store": store, "ti": ti})
    assert ti.pushed == {"veo_task_id": "t-1"}, "visible in the UI while the task waits"
    result = op(prompt="edited later").execute_complete(
        {"task_state_store": store, "ti": ti}, wake(submission_key=store.values[LEDGER_KEY]["key"])
    )
    assert ti.pushed["video_id"] == "v-1" and ti.pushed["video_url"] == "https://cdn.example/v-1.mp4"
    assert (result["prompt"], result["resolution"], result["action"]) == ("a mug", "1080p", "text2video"), (
        "the XCom reports what was sent (kept in the ledger), not the arguments of a later try"
    )


def test_returning_right_after_submission_does_not_say_waiting(api, store, caplog, capsys):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    op(wait_for_completion=False).execute(ctx(store))
    logged = caplog.text + capsys.readouterr().out  # the task logger writes through structlog
    assert "Submitted Veo job t-1" in logged and "waiting" not in logged


@pytest.mark.parametrize(
    "output_path", ["nofs://x/y.mp4", "foo://bucket/v.mp4"]
)  # memory:// may be attached by other tests
def test_an_output_path_without_a_filesystem_fails_before_paying(api, store, output_path):
    route = api.route()
    with pytest.raises(AirflowFailException, match="cannot be written"):
        op(output_path=output_path).execute(ctx(store))
    assert route.call_count == 0 and store.writes == []


def test_an_unwritable_folder_fails_before_paying(api, store, tmp_path):
    import os

    if os.geteuid() == 0:
        locked = tmp_path / "file-not-folder"
        locked.write_text("x")  # root can write anywhere: a path under a file is unwritable for everyone
        output_path = str(locked / "v.mp4")
    else:
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        output_path = str(locked / "v.mp4")
    route = api.route()
    with pytest.raises(AirflowFailException, match="cannot be written"):
        op(output_path=output_path).execute(ctx(store))
    assert route.call_count == 0 and list(tmp_path.rglob("*.probe")) == []


# ------------------------------------------------------------------------ configuration typos and the wait's connection


def test_a_misspelt_argument_fails_at_parse_time_with_did_you_mean():
    with pytest.raises(TypeError, match=r"Invalid arguments were passed to VeoOperator \(task_id: veo\)") as info:
        op(promt="a mug")
    assert "'promt' (did you mean 'prompt'?)" in str(info.value)
    with pytest.raises(TypeError, match=r"'retires' \(did you mean 'retries'\?\)"):
        op(retires=3)


def test_airflows_own_arguments_and_mapping_still_pass_the_name_check():
    task = op(pool="veo", owner="media", execution_timeout=None, doc_md="x")
    assert task.pool == "veo" and task.owner == "media"
    mapped = VeoOperator.partial(task_id="many", model="veo3").expand(prompt=["a", "b"])
    assert mapped.partial_kwargs["model"] == "veo3"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"daily_job_limt": 2}, "'daily_job_limt' (did you mean 'daily_job_limit'?)"),
        ({"timout": 5}, "'timout' (did you mean 'timeout'?)"),
        ({"daily_job_limit": "ten"}, "'daily_job_limit' must be a whole number of jobs"),
    ],
)
def test_a_connection_configuration_error_is_final_and_sends_nothing(api, store, veo_conn, extra, message):
    veo_conn(**extra)
    route = api.route()
    with pytest.raises(AirflowFailException) as info:  # AirflowFailException: Airflow does not retry it
        op().execute(ctx(store))
    assert message in str(info.value)
    assert route.call_count == 0 and store.writes == []


def test_a_wait_in_the_worker_that_cannot_read_the_connection_fails_before_paying(api, store, monkeypatch):
    """The task reads the connection one way; the wait's asynchronous lookup does not find it."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from veo_provider.hooks.veo import VeoHook

    async def not_there(cls, conn_id):
        raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")

    monkeypatch.setattr(VeoHook, "aget_connection", classmethod(not_there), raising=False)
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(AirflowFailException) as info:
        op(deferrable=False).execute(ctx(store))
    message = str(info.value)
    assert "Stopped before any paid call" in message and "AIRFLOW_CONN_VEO_DEFAULT" in message
    assert "airflow connections add veo_default" in message
    assert post.call_count == 0 and store.writes == []


def test_a_wait_that_would_read_another_connection_fails_before_paying(api, store, monkeypatch):
    from airflow.providers.common.compat.sdk import Connection

    from veo_provider.hooks.veo import VeoHook

    async def elsewhere(cls, conn_id):
        return Connection(conn_id=conn_id, conn_type="veo", host="https://other.example", password="tok-other")

    monkeypatch.setattr(VeoHook, "aget_connection", classmethod(elsewhere), raising=False)
    post = api.post("/veo/videos")
    with pytest.raises(AirflowFailException, match="from another source than this task") as info:
        op(deferrable=False).execute(ctx(store))
    assert "tok-other" not in str(info.value) and post.call_count == 0


def test_deferring_with_a_connection_from_the_workers_environment_says_the_triggerer_needs_it_too(
    api, store, caplog, capsys
):
    api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(TaskDeferred):
        op().execute(ctx(store))
    logged = caplog.text + capsys.readouterr().out  # the task logger writes through structlog
    assert "comes from this worker's environment variable AIRFLOW_CONN_VEO_DEFAULT" in logged
    assert "Define the same variable on the triggerer" in logged


def test_an_unknown_extra_body_field_is_logged_with_the_nearest_known_one(api, store, caplog, capsys):
    route = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    with pytest.raises(TaskDeferred):
        op(extra_body={"durration": 8, "seed": 1, "brand_new_field": True}).execute(ctx(store))
    logged = caplog.text + capsys.readouterr().out
    assert "extra_body field 'durration' is not one /veo/videos is known to take (did you mean 'duration'?" in logged
    assert "'brand_new_field' is not one /veo/videos is known to take (a new API field?" in logged
    assert "'seed'" not in logged
    assert json.loads(route.calls.last.request.content)["durration"] == 8, "still sent as given"


# ------------------------------------------------------------- mapped tasks keep their defaults


def test_mapped_tasks_keep_two_retries_and_a_30s_delay_unless_default_args_or_the_call_say_otherwise():
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import DAG, TaskGroup

    with DAG("mapped_defaults", schedule=None):
        plain = VeoOperator.partial(task_id="plain", model="veo3").expand(prompt=["a", "b"])
        own = VeoOperator.partial(task_id="own", retries=0, retry_delay=5).expand(prompt=["a"])
        with TaskGroup("g", default_args={"retries": 7}):
            grouped = VeoOperator.partial(task_id="grouped").expand(prompt=["a"])
        called = VeoOperator.partial(task_id="called", default_args={"retries": 4}).expand(prompt=["a"])
    assert plain.retries == 2 and plain.retry_delay == timedelta(seconds=30)
    assert own.retries == 0 and own.retry_delay == timedelta(seconds=5)
    assert grouped.retries == 7 and called.retries == 4
    with DAG("mapped_dag_defaults", schedule=None, default_args={"retries": 5}):
        from_dag = VeoOperator.partial(task_id="from_dag").expand(prompt=["a"])
    assert from_dag.retries == 5
