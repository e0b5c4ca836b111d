"""VeoTrigger: the one wait loop, for the operator (deferred or not) and the sensor.

It has no side effects (Airflow may run two copies, or restart it from the top), holds only
ids and numbers in its kwargs (never the token), and yields exactly one event:
``success`` (the parsed result), ``failed`` (the API's code and reason), ``timeout``, or
``error`` (a problem no wait can fix, such as a bad token).

Polls of all triggers in one triggerer are aligned to the same clock ticks and coalesced
into ``retrieve_batch`` calls, so 1,000 waiting videos cost a handful of requests per tick,
not 1,000 (the vendor asks for about one request a second per account).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from veo_provider.models import TaskState, TaskStatus, decide_state

__all__ = ["VeoTrigger", "event_status"]

#: How long a batch waits for other triggers' ids before it is sent.
BATCH_WINDOW = 0.2
#: Checks in which a batch answer omits our id before we ask for it alone (a 404 ends the wait).
MISSES_BEFORE_SINGLE_CHECK = 3


class _Batcher:
    """Coalesces ``get_task`` calls made within BATCH_WINDOW into one ``retrieve_batch`` call."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.pending: dict[str, list[asyncio.Future[TaskStatus | None]]] = {}
        self.flusher: asyncio.Task[None] | None = None

    async def status(self, task_id: str) -> TaskStatus | None:
        """The job's status (``None`` if the API does not know the id yet)."""
        fut: asyncio.Future[TaskStatus | None] = asyncio.get_running_loop().create_future()
        self.pending.setdefault(task_id, []).append(fut)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        await asyncio.sleep(BATCH_WINDOW)
        waiting, self.pending = self.pending, {}
        from veo_provider.hooks.veo import VeoHook

        try:
            records = await VeoHook(self.conn_id).aget_tasks(list(waiting))
        except BaseException as exc:
            for futs in waiting.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        found = {r.id: decide_state(r) for r in records if r.id}
        for task_id, futs in waiting.items():
            for fut in futs:
                if not fut.done():
                    fut.set_result(found.get(task_id))


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Batcher]] = weakref.WeakKeyDictionary()


def _batcher(conn_id: str) -> _Batcher:
    per_loop = _batchers.setdefault(asyncio.get_running_loop(), {})
    if conn_id not in per_loop:
        per_loop[conn_id] = _Batcher(conn_id)
    return per_loop[conn_id]


def _until_next_tick(interval: float, now: float) -> float:
    """Seconds to the next multiple of ``interval`` on the wall clock (aligns all triggers)."""
    return interval - (now % interval) if interval > 0 else 0.0


class VeoTrigger(BaseTrigger):
    """Wait for a Veo job to finish.

    :param conn_id: Veo connection id (read inside the triggerer; the token never leaves it).
    :param task_id: The Veo task id to wait for.
    :param deadline: Absolute UNIX time after which a ``timeout`` event is sent, so that a
        trigger restarted by the triggerer does not wait longer than asked.
    :param poll_interval: Seconds between checks (aligned across triggers to batch them).
    :param first_poll_delay: Seconds before the first check (a video takes minutes).
    :param submission_key: Our key for the submission (lets a callback find this wait).
    :param wait_mode: ``poll``, or ``callback`` (the receiver resumes the task; polls here are
        only the slow safety net, at ``poll_interval``).
    """

    def __init__(
        self,
        *,
        conn_id: str,
        task_id: str,
        deadline: float,
        poll_interval: float = 15.0,
        first_poll_delay: float = 10.0,
        submission_key: str | None = None,
        wait_mode: str = "poll",
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.veo_task_id = task_id
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.first_poll_delay = float(first_poll_delay)
        self.submission_key = submission_key
        self.wait_mode = wait_mode

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "task_id": self.veo_task_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "first_poll_delay": self.first_poll_delay,
                "submission_key": self.submission_key,
                "wait_mode": self.wait_mode,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """The one wait loop; returns the single event payload."""
        from veo_provider.exceptions import VeoError

        started = time.monotonic()
        last: TaskState | None = None
        misses = 0
        # In callback mode the callback may already have come (or the trigger restarted): check now.
        delay = 0.0 if self.wait_mode == "callback" else self.first_poll_delay
        while True:
            remaining = self.deadline - time.time()
            if remaining <= 0:
                return self._event("timeout", started, last=last)
            await asyncio.sleep(min(delay, remaining))
            if time.time() >= self.deadline:
                return self._event("timeout", started, last=last)
            try:
                status = await _batcher(self.conn_id).status(self.veo_task_id)
                misses = 0 if status is not None else misses + 1
                if misses >= MISSES_BEFORE_SINGLE_CHECK:
                    from veo_provider.hooks.veo import VeoHook

                    status, misses = decide_state(await VeoHook(self.conn_id).aget_task(self.veo_task_id)), 0
            except VeoError as exc:
                if not exc.retryable:
                    return self._event("error", started, error_code=exc.code, error_message=str(exc))
                self.log.warning("Veo task %s: transient error, will check again: %s", self.veo_task_id, exc)
                status = None
            if status is not None:
                if status.state is not last:
                    self.log.info(
                        "Veo task %s is %s after %.0fs",
                        self.veo_task_id,
                        status.state.value,
                        time.monotonic() - started,
                    )
                    last = status.state
                if status.state is TaskState.SUCCEEDED:
                    return self._event("success", started, status=status)
                if status.state is TaskState.FAILED:
                    return self._event("failed", started, status=status)
            delay = max(_until_next_tick(self.poll_interval, time.time()), 0.05)

    def _event(
        self,
        kind: str,
        started: float,
        *,
        status: TaskStatus | None = None,
        last: TaskState | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "status": kind,
            "veo_task_id": self.veo_task_id,
            "submission_key": self.submission_key,
            "source": "poll",
            "elapsed": round(time.monotonic() - started, 3),
            **extra,
        }
        if status is not None:
            event["trace_id"] = status.trace_id
            event["result"] = status.result.model_dump(mode="json", exclude_none=True) if status.result else None
            event["error_code"] = status.error_code
            event["error_message"] = status.error_message
        if last is not None:
            event["last_state"] = last.value
        return event


def event_status(event: dict[str, Any]) -> TaskStatus | None:
    """The finished job's status from a trigger event; ``None`` on timeout; raises on failure."""
    from airflow.sdk.exceptions import AirflowFailException

    from veo_provider.exceptions import VeoJobFailedError
    from veo_provider.models import VeoResult

    kind, task_id = event.get("status"), event.get("veo_task_id")
    if kind == "success":
        status = decide_state(VeoResult.model_validate(event.get("result") or {}))
        status.task_id = status.task_id or task_id
        status.trace_id = status.trace_id or event.get("trace_id")
        return status
    if kind == "failed":
        raise VeoJobFailedError.of(task_id, event.get("error_code"), event.get("error_message"), event.get("trace_id"))
    if kind == "timeout":
        return None
    raise AirflowFailException(f"Waiting for Veo job {task_id} failed: {event.get('error_message') or event}")
