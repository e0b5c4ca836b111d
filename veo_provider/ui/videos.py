"""What the Videos tab shows of one Veo task instance, built from Airflow's records of it.

Pure: the store (``store.py``) reads the rows in bulk, this turns one task instance's rows into
one ``VideoView``. Every field comes from Airflow's records (the task instance, its XCom result,
its submission ledger, its rendered template fields), never from the request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

__all__ = ["VEO_OPERATORS", "TaskInstanceFacts", "VideoView", "recorded_output_path", "video_view"]

#: How Airflow records the Veo operators in ``task_instance.operator`` / ``custom_operator_name``.
VEO_OPERATORS = frozenset({"VeoOperator", "_VeoDecoratedOperator", "@task.veo"})
#: States of a task instance that has not finished: the tab shows how long it has waited.
WAITING_STATES = frozenset({"scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule"})


@dataclass
class TaskInstanceFacts:
    """The rows Airflow keeps for one task instance, as read by the store."""

    task_id: str
    map_index: int
    state: str | None = None
    operator: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration: float | None = None
    try_number: int = 0
    #: The task's XCom ``return_value`` (the dict of ``models.records.result_to_xcom``).
    result: Any = None
    #: The ``veo_task_id`` XCom pushed right after submission (visible while the task waits).
    pushed_job_id: Any = None
    #: The submission ledger entry (``veo_submission`` in the task state store), as stored.
    ledger: dict[str, Any] = field(default_factory=dict)
    #: The rendered template fields (prompt, model, aspect_ratio ... as the task rendered them).
    rendered: dict[str, Any] = field(default_factory=dict)
    #: The task instance's DAG and run (the gallery lists many runs).
    dag_id: str = ""
    run_id: str = ""


class VideoView(BaseModel):
    """One card of the Videos tab."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    prompt: str | None
    model: str | None
    action: str | None
    resolution: str | None
    aspect_ratio: str | None
    veo_task_id: str | None
    trace_id: str | None
    video_id: str | None
    #: Where the task wrote the video (its XCom result, checked against its rendered
    #: ``output_path``); streamed by ``stream_url``.
    output_path: str | None
    #: The api-server route that streams ``output_path`` (None when nothing was written).
    stream_url: str | None
    #: The vendor's URL, shown only when nothing was stored (it expires at the vendor's side).
    video_url: str | None
    start_date: datetime | None
    end_date: datetime | None
    #: Seconds from the try's start to its end (or to now, while it waits).
    elapsed_seconds: float | None
    waiting: bool
    error_code: str | None
    error_message: str | None


def _looks_like_result(value: Any) -> bool:
    return isinstance(value, dict) and "task_id" in value and "video_url" in value and "output_path" in value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _same_target(recorded: str, rendered: str) -> bool:
    """Whether the result's path is where the rendered ``output_path`` made the hook write.

    The hook reports a local path (or ``file://`` URL) as a plain path and an object-store URL
    as given (see ``hooks/files.destination``).
    """

    def normal(path: str) -> str:
        if "://" in path and not path.startswith("file://"):
            return path.strip()
        return os.path.normpath(path.strip().removeprefix("file://"))

    return normal(recorded) == normal(rendered)


def recorded_output_path(result: Any, rendered: dict[str, Any]) -> str | None:
    """The file a finished Veo task wrote (None: nothing stored, or nothing that can be trusted).

    The XCom result says where the file is, but XComs can be edited through Airflow's REST API;
    the rendered template fields are written by the worker only. So the result's path counts
    only when it is the ``output_path`` the worker rendered for that task instance: a path a user
    put in an XCom is never served.
    """
    if not _looks_like_result(result):
        return None
    recorded, asked = _text(result.get("output_path")), _text(rendered.get("output_path"))
    return recorded if recorded and asked and _same_target(recorded, asked) else None


def _elapsed(facts: TaskInstanceFacts, now: datetime) -> float | None:
    if facts.start_date is None:
        return None
    if facts.end_date is not None:
        return facts.duration if facts.duration is not None else (facts.end_date - facts.start_date).total_seconds()
    return max((now - facts.start_date).total_seconds(), 0.0)


def video_view(dag_id: str, run_id: str, facts: TaskInstanceFacts, now: datetime, stream_url: str) -> VideoView:
    """The card of one task instance; ``stream_url`` is used only when the task recorded a file."""
    result: dict[str, Any] = facts.result if _looks_like_result(facts.result) else {}
    raw_sent = facts.ledger.get("sent")
    sent: dict[str, Any] = raw_sent if isinstance(raw_sent, dict) else {}
    rendered = facts.rendered

    def pick(key: str) -> str | None:
        # What was sent (result, then ledger) wins over what the template rendered.
        return _text(result.get(key)) or _text(sent.get(key)) or _text(rendered.get(key))

    output_path = recorded_output_path(result, rendered)
    return VideoView(
        dag_id=dag_id,
        run_id=run_id,
        task_id=facts.task_id,
        map_index=facts.map_index,
        state=facts.state,
        try_number=facts.try_number,
        prompt=pick("prompt"),
        model=pick("model"),
        action=pick("action"),
        resolution=pick("resolution"),
        aspect_ratio=_text(rendered.get("aspect_ratio")),
        veo_task_id=_text(result.get("task_id")) or _text(facts.ledger.get("task_id")) or _text(facts.pushed_job_id),
        trace_id=_text(result.get("trace_id")) or _text(facts.ledger.get("trace_id")),
        video_id=_text(result.get("video_id")),
        output_path=output_path,
        stream_url=stream_url if output_path else None,
        video_url=None if output_path else _text(result.get("video_url")),
        start_date=facts.start_date,
        end_date=facts.end_date,
        elapsed_seconds=_elapsed(facts, now),
        waiting=facts.state in WAITING_STATES,
        error_code=_text(facts.ledger.get("error_code")) or _text(result.get("error_code")),
        error_message=_text(facts.ledger.get("error_message")) or _text(result.get("error_message")),
    )
