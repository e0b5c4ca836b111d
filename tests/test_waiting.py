"""How a wait ends: the one state mapping, argument checks, and the worker-side wait's own client."""

from __future__ import annotations

import pytest

from veo_provider.exceptions import VeoJobFailedError
from veo_provider.models import TaskState, TaskStatus
from veo_provider.waiting import check_wait_arguments, finished, run_here


@pytest.mark.parametrize(("state", "done"), [(TaskState.PENDING, False), (TaskState.RUNNING, False)])
def test_a_running_job_is_not_finished(state: TaskState, done: bool) -> None:
    assert finished(TaskStatus(state=state), "t") is None


def test_a_succeeded_job_is_finished_and_a_failed_one_raises_with_the_api_reason() -> None:
    ok = TaskStatus(state=TaskState.SUCCEEDED, task_id="t")
    assert finished(ok, "t") is ok
    bad = TaskStatus(state=TaskState.FAILED, error_code="forbidden", error_message="moderation")
    with pytest.raises(VeoJobFailedError, match="Veo job t failed at the API: forbidden: moderation"):
        finished(bad, "t")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait_mode": "push"}, "wait_mode 'push' is unknown"),
        ({"on_uncertain_submission": "retry"}, "on_uncertain_submission 'retry' is unknown"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
    ],
)
def test_bad_wait_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    args = {"wait_mode": "auto", "on_uncertain_submission": "fail", "timeout": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        check_wait_arguments(**args)


def test_confirm_callback_false_is_ignored_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="confirm_callback=False"):
        check_wait_arguments(wait_mode="auto", on_uncertain_submission="fail", confirm_callback=False)


def test_a_wait_run_in_the_worker_closes_its_own_client() -> None:
    from veo_provider.hooks.clients import shared_async_client

    seen = []

    class Trigger:
        async def wait(self) -> dict:
            seen.append(shared_async_client())
            return {"status": "timeout"}

    assert run_here(Trigger()) == {"status": "timeout"}  # type: ignore[arg-type]
    assert seen[0].is_closed
