"""@task.veo: the function's return value becomes the request; the rest is VeoOperator's."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, TaskDeferred, task

from tests.support import unmapped
from veo_provider.testing.fakes import FakeStore


def test_the_function_returns_the_prompt_and_the_job_is_submitted_once(api):
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
    op = unmapped(lambda: "a red kite over the sea", model="veo3", first_poll_delay=0)
    store = FakeStore()
    with pytest.raises(TaskDeferred) as info:
        op.execute({"task_state_store": store})
    body = json.loads(post.calls.last.request.content)
    assert (body["prompt"], body["model"], body["action"]) == ("a red kite over the sea", "veo3", "text2video")
    assert info.value.trigger.veo_task_id == "t-1" and post.call_count == 1


def test_the_function_may_return_request_fields(api):
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))

    def frames():
        return {"prompt": "a door opens", "action": "image2video", "image_urls": ["https://cdn.example/a.png"]}

    with pytest.raises(TaskDeferred):
        unmapped(frames, model="veo3").execute({"task_state_store": FakeStore()})
    body = json.loads(post.calls.last.request.content)
    assert body["action"] == "image2video" and body["image_urls"] == ["https://cdn.example/a.png"]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, "returned a NoneType: return the prompt"),
        (["a", "b"], "returned a list"),
        ({"prompt": "x", "promtp": "typo"}, "unknown field(s) 'promtp' (did you mean 'prompt'?)"),
        ({"action": "image2video", "prompt": "x"}, "image2video needs 1 or 2 image_urls"),
        ("", "text2video needs a prompt"),
    ],
)
def test_a_bad_return_value_fails_before_any_http(api, returned, message):
    route = api.route()
    with pytest.raises(AirflowFailException, match=re.escape(message)):
        unmapped(lambda: returned, model="veo3").execute({"task_state_store": FakeStore()})
    assert route.call_count == 0


def test_a_misspelt_decorator_argument_fails_at_parse_time_with_did_you_mean():
    with DAG("d_typo", schedule=None), pytest.raises(TypeError, match=r"'modle' \(did you mean 'model'\?\)"):
        task.veo(task_id="t", modle="veo3")(lambda: "x")()


def test_retries_default_to_two_unless_default_args_say_otherwise():
    with DAG("d_defaults", schedule=None):
        mapped = task.veo(task_id="m", model="veo3")(lambda topic: topic).expand(topic=["a", "b", "c"])
        plain = task.veo(task_id="p", model="veo3")(lambda: "x")()
    assert mapped.operator.retries == 2 and plain.operator.retries == 2
    assert plain.operator.retry_delay == timedelta(seconds=30)
    with DAG("d_default_args", schedule=None, default_args={"retries": 0}):
        mapped = task.veo(task_id="m", model="veo3")(lambda topic: topic).expand(topic=["a"])
    assert mapped.operator.retries == 0


def test_multiple_outputs_is_refused():
    with pytest.raises(ValueError, match="multiple_outputs"), DAG("d_mo", schedule=None):
        task.veo(task_id="mo", model="veo3", multiple_outputs=True)(lambda: "x")()


def test_a_function_annotated_to_return_a_dict_still_gives_one_result(api):
    """Airflow infers multiple_outputs from a `-> dict` annotation; a Veo task returns one dict."""
    post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))

    def fields() -> dict:
        return {"prompt": "a kite"}

    op = unmapped(fields, model="veo3")
    assert op.multiple_outputs is False
    with pytest.raises(TaskDeferred):
        op.execute({"task_state_store": FakeStore()})
    assert post.call_count == 1
