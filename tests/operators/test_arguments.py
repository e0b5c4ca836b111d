"""VeoOperator's wait arguments are refused at DAG-parse time, naming the argument and the fix."""

from __future__ import annotations

import pytest

from veo_provider.operators.arguments import check_wait_arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait_mode": "push"}, "wait_mode 'push' is unknown"),
        ({"on_uncertain_submission": "retry"}, "on_uncertain_submission 'retry' is unknown"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"timeout": float("inf")}, "timeout must be a positive number of seconds"),
        ({"timeout": True}, "timeout must be a positive number of seconds"),
        ({"first_poll_delay": -1}, "first_poll_delay must be a positive number of seconds"),
        ({"poll_interval": 400 * 24 * 3600}, "poll_interval must be a positive number of seconds up to a year"),
    ],
)
def test_bad_wait_arguments_name_the_argument(kwargs: dict, message: str) -> None:
    args = {"wait_mode": "auto", "on_uncertain_submission": "fail", "timeout": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        check_wait_arguments(**args)


def test_a_first_poll_delay_of_zero_is_a_valid_wait() -> None:
    check_wait_arguments(wait_mode="poll", on_uncertain_submission="resubmit", first_poll_delay=0, timeout=1.0)
