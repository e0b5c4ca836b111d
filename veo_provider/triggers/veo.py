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
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from veo_provider.models import TaskState, TaskStatus, VeoEvent, decide_state
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH

__all__ = ["VeoTrigger"]

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

    async def status(self, veo_task_id: str) -> TaskStatus | None:
        """The job's status (``None`` if the API does not know the id yet)."""
        fut: asyncio.Future[TaskStatus | None] = asyncio.get_running_loop().create_future()
        self.pending.setdefault(veo_task_id, []).append(fut)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        # Loop until nothing is pending: ids asked for during a request go in the next batch.
        from veo_provider.hooks.veo import VeoHook

        while self.pending:
            await asyncio.sleep(BATCH_WINDOW)
            waiting, self.pending = self.pending, {}
            try:
                records = await VeoHook(self.conn_id).aget_tasks(list(waiting))
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled: nobody will flush what is pending
                    waiting.update(self.pending)
                    self.pending = {}
                _settle(waiting, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            found = {r.id: decide_state(r) for r in records if r.id}
            for veo_task_id, futs in waiting.items():
                for fut in futs:
                    if not fut.done():
                        fut.set_result(found.get(veo_task_id))


def _settle(waiting: dict[str, list[asyncio.Future[TaskStatus | None]]], exc: BaseException) -> None:
    for futs in waiting.values():
        for fut in futs:
            if not fut.done():
                fut.set_exception(exc)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Batcher]] = weakref.WeakKeyDictionary()


def _batcher(conn_id: str) -> _Batcher:
    per_loop = _batchers.setdefault(asyncio.get_running_loop(), {})
    if conn_id not in per_loop:
        per_loop[conn_id] = _Batcher(conn_id)
    return per_loop[conn_id]


def _until_next_tick(interval: float, now: float) -> float:
    """Seconds to the next multiple of ``interval`` on the wall clock (aligns all triggers)."""
    return interval - (now % interval) if interval > 0 else 0.0


class _VeoTriggerEvent(TriggerEvent):
    """A TriggerEvent whose repr is one short line.

    Airflow's triggerer writes ``Trigger fired event ... result=<repr of the event>`` into the
    task log; the payload holds the whole API answer (every video URL), which belongs in XCom,
    not on one log line. The payload itself is unchanged (the supervisor sees a TriggerEvent).
    """

    def __repr__(self) -> str:
        p = self.payload if isinstance(self.payload, dict) else {}
        return (
            f"TriggerEvent<{p.get('status')} for Veo job {p.get('veo_task_id')} "
            f"after {float(p.get('elapsed') or 0):.0f}s ({p.get('source')})>"
        )


#: While nothing changes, say "still running" at most this often (a task log, not a flood).
PROGRESS_EVERY = 300.0


class _Progress:
    """Logs state changes at once and an unchanged state every PROGRESS_EVERY seconds, with the next check."""

    def __init__(self, trigger: VeoTrigger, started: float) -> None:
        self.trigger, self.started = trigger, started
        self.last: TaskState | None = None
        self.said_at = started

    def saw(self, state: TaskState, next_check: float) -> None:
        now = time.monotonic()
        if state is self.last and now - self.said_at < PROGRESS_EVERY:
            return
        verb = "is" if state is not self.last else "is still"
        self.trigger.log.info(
            "Veo job %s %s %s after %.0fs; next check in %.0fs",
            self.trigger.veo_task_id,
            verb,
            state.value,
            now - self.started,
            next_check,
        )
        self.last, self.said_at = state, now


class VeoTrigger(BaseTrigger):
    """Wait for a Veo job to finish.

    :param conn_id: Veo connection id (read inside the triggerer; the token never leaves it).
    :param veo_task_id: The Veo job to wait for; ``None`` while a lost submission waits for its
        callback to tell the id (only the callback receiver can end that wait early).
    :param deadline: Absolute UNIX time after which a ``timeout`` event is sent, so that a
        trigger restarted by the triggerer does not wait longer than asked.
    :param first_check_at: Absolute UNIX time of the first check. A trigger restarted after it
        checks at once: the job may have finished (or called back) while nobody was waiting.
    :param poll_interval: Seconds between checks (aligned across triggers so they batch). In
        callback mode this is the slow safety net for lost callbacks.
    :param submission_key: Our key for the submission (lets the callback receiver find this wait).
    :param wait_mode: ``poll`` or ``callback`` (informational: the receiver resumes the task).
    :param try_number: The try that deferred; every event says it (see ``runtime.event_of_an_earlier_try``).
    """

    def __init__(
        self,
        *,
        conn_id: str,
        veo_task_id: str | None = None,
        deadline: float,
        first_check_at: float = 0.0,
        poll_interval: float = 15.0,
        submission_key: str | None = None,
        wait_mode: str = "poll",
        try_number: int | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.veo_task_id = veo_task_id
        self.deadline = float(deadline)
        self.first_check_at = float(first_check_at)
        self.poll_interval = float(poll_interval)
        self.submission_key = submission_key
        self.wait_mode = wait_mode
        self.try_number = try_number

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            VEO_TRIGGER_CLASSPATH,
            {
                "conn_id": self.conn_id,
                "veo_task_id": self.veo_task_id,
                "deadline": self.deadline,
                "first_check_at": self.first_check_at,
                "poll_interval": self.poll_interval,
                "submission_key": self.submission_key,
                "wait_mode": self.wait_mode,
                "try_number": self.try_number,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield _VeoTriggerEvent(payload=await self.wait())

    def run_here(self) -> dict[str, Any]:
        """Run the wait loop in this worker (``deferrable=False``), with a client scoped to it."""

        async def wait() -> dict[str, Any]:
            from veo_provider.hooks.clients import aclose_shared_async_client

            try:
                return await self.wait()
            finally:
                await aclose_shared_async_client()

        return asyncio.run(wait())

    async def wait(self) -> dict[str, Any]:
        """The one wait loop; returns the single event payload."""
        started = time.monotonic()
        progress = _Progress(self, started)
        misses = 0
        delay = max(0.0, self.first_check_at - time.time())
        self.log.info(
            "Waiting for Veo job %s (%s mode); first check in %.0fs, deadline in %.0fs",
            self.veo_task_id or f"of submission {self.submission_key}",
            self.wait_mode,
            delay,
            max(self.deadline - time.time(), 0),
        )
        while True:
            remaining = self.deadline - time.time()
            if remaining <= 0 or self.veo_task_id is None:
                await asyncio.sleep(max(remaining, 0))  # nothing to poll: only a callback can end this early
                return self._event("timeout", started, last=progress.last)
            await asyncio.sleep(min(delay, remaining))
            if time.time() >= self.deadline:
                return self._event("timeout", started, last=progress.last)
            status, misses, error = await self._check(misses)
            if error is not None:
                return error
            delay = max(_until_next_tick(self.poll_interval, time.time()), 0.05)
            if status is not None:
                if status.state is TaskState.SUCCEEDED:
                    return self._event("success", started, status=status)
                if status.state is TaskState.FAILED:
                    return self._event("failed", started, status=status)
                progress.saw(status.state, delay)

    async def _check(self, misses: int) -> tuple[TaskStatus | None, int, dict[str, Any] | None]:
        """One status check: (status or None, consecutive misses, error event if the wait must end)."""
        from veo_provider.exceptions import VeoError
        from veo_provider.hooks.veo import VeoHook

        assert self.veo_task_id is not None
        try:
            status = await _batcher(self.conn_id).status(self.veo_task_id)
            misses = 0 if status is not None else misses + 1
            if misses >= MISSES_BEFORE_SINGLE_CHECK:  # a batch keeps omitting it: ask alone (404 ends it)
                status, misses = decide_state(await VeoHook(self.conn_id).aget_task(self.veo_task_id)), 0
        except VeoError as exc:
            if not exc.retryable:
                return None, misses, self._event("error", time.monotonic(), error_code=exc.code, error_message=str(exc))
            self.log.warning("Veo job %s: transient error, will check again: %s", self.veo_task_id, exc)
            return None, misses, None
        return status, misses, None

    def _event(
        self,
        kind: Literal["success", "failed", "timeout", "error"],
        started: float,
        *,
        status: TaskStatus | None = None,
        last: TaskState | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return VeoEvent.build(
            kind,
            source="poll",
            veo_task_id=self.veo_task_id,
            submission_key=self.submission_key,
            status=status,
            elapsed=round(time.monotonic() - started, 3),
            deadline=self.deadline,
            last_state=last.value if last is not None else None,
            deferred_in_try=self.try_number,
            **extra,
        )
