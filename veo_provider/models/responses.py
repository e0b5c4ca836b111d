"""What the API answers, parsed leniently (the vendor adds fields without notice), and the one
state mapping (``decide_state``: pending / running / succeeded / failed) that operator, sensor,
trigger and callback receiver all read a job through; ``TaskStatus.finished`` is what that
state means to a waiting task."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class VideoItem(_Lenient):
    id: str | None = None
    video_url: str | None = None
    created_at: str | None = None
    complete_at: str | None = None
    state: str | None = None


class ApiError(_Lenient):
    code: str | None = None
    message: str | None = None


class VeoResult(_Lenient):
    """The synchronous answer and the callback body (same shape); ``{task_id}`` when async."""

    success: bool | None = None
    task_id: str | None = None
    trace_id: str | None = None
    data: list[VideoItem] | None = None
    error: ApiError | None = None


class TaskRecord(_Lenient):
    """One ``/veo/tasks`` record; ``response`` is absent while the job is pending."""

    id: str | None = None
    trace_id: str | None = None
    type: str | None = None
    created_at: float | str | None = None
    started_at: float | str | None = None
    finished_at: float | str | None = None
    elapsed: float | None = None
    request: dict[str, Any] | None = None
    response: VeoResult | None = None


class Submission(BaseModel):
    """What a submission returned: the job's ids, and its result if the API answered synchronously."""

    veo_task_id: str
    trace_id: str | None = None
    result: VeoResult | None = None

    @property
    def status(self) -> TaskStatus:
        if self.result is None:
            return TaskStatus(state=TaskState.PENDING, veo_task_id=self.veo_task_id, trace_id=self.trace_id)
        return decide_state(self.result)


class TaskBatch(_Lenient):
    items: list[TaskRecord] = Field(default_factory=list)
    count: int | None = None


class TaskState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


_RUNNING_WORDS = {"running", "processing", "pending", "queued", "submitted", "in_progress"}
_FAILED_WORDS = {"failed", "failure", "error", "cancelled", "canceled", "rejected"}
_SUCCESS_WORDS = {"succeeded", "success", "completed", "complete", "finished", "done"}


class TaskStatus(BaseModel):
    """What we concluded about a job, from whichever shape we saw it in."""

    state: TaskState
    veo_task_id: str | None = None
    trace_id: str | None = None
    result: VeoResult | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def video_url(self) -> str | None:
        """The first video's URL (the API returns one video per job)."""
        return self.result.data[0].video_url if self.result and self.result.data else None

    def finished(self, veo_task_id: str | None = None) -> bool:
        """What ``decide_state``'s reading means to a waiting task: True once the job succeeded, False
        while it runs; a failed job raises ``VeoJobFailedError`` (naming ``veo_task_id`` if we have no id)."""
        if self.state is TaskState.FAILED:
            from veo_provider.exceptions import VeoJobFailedError

            raise VeoJobFailedError.of(
                self.veo_task_id or veo_task_id, self.error_code, self.error_message, self.trace_id
            )
        return self.state is TaskState.SUCCEEDED


def decide_state(obj: VeoResult | TaskRecord | dict[str, Any]) -> TaskStatus:
    """Decide a job's state from a sync answer, a callback body or a ``/veo/tasks`` record.

    The API has no single state field; the rules are in ``shared/veo-api/NOTES.md``.
    """
    if isinstance(obj, dict):
        obj = TaskRecord.model_validate(obj) if "response" in obj or "request" in obj else VeoResult.model_validate(obj)
    if isinstance(obj, TaskRecord):
        if obj.response is None:
            return TaskStatus(state=TaskState.PENDING, veo_task_id=obj.id, trace_id=obj.trace_id)
        status = decide_state(obj.response)
        status.veo_task_id = status.veo_task_id or obj.id
        status.trace_id = status.trace_id or obj.trace_id
        return status

    res = obj
    base: dict[str, Any] = {"veo_task_id": res.task_id, "trace_id": res.trace_id, "result": res}
    items = res.data or []
    words = {(i.state or "").strip().lower() for i in items} - {""}
    has_url = any(i.video_url for i in items)
    if res.success is False or words & _FAILED_WORDS:
        err = res.error or ApiError()
        return TaskStatus(
            state=TaskState.FAILED,
            error_code=err.code or "failed",
            error_message=err.message or f"the API reported state {sorted(words) or ['failed']}",
            **base,
        )
    if words & _RUNNING_WORDS:
        return TaskStatus(state=TaskState.RUNNING, **base)
    if has_url and (res.success is True or words & _SUCCESS_WORDS):
        return TaskStatus(state=TaskState.SUCCEEDED, **base)
    if words & _SUCCESS_WORDS or (res.success is True and items):
        return TaskStatus(
            state=TaskState.FAILED,
            error_code="no_video_url",
            error_message="the API reported the job done but returned no video_url",
            **base,
        )
    # ``{task_id}`` only (async acknowledgement) or an empty answer: not done yet.
    return TaskStatus(state=TaskState.PENDING if not items else TaskState.RUNNING, **base)
