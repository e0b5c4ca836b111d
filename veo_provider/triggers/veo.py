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
import dataclasses
import math
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


@dataclasses.dataclass(eq=False)
class _Check:
    """One wait's pending status check.

    An answer that only repeats ``seen`` is not handed back: the batcher asks again on the wait's
    next tick itself, so a job that stays running costs its wait no wake-up per tick (1,000 waits
    would cost 1,000 coroutine steps each tick). The wait hears of it at ``report_at`` (its
    progress line is due) or when the next tick would reach ``deadline``.
    """

    fut: asyncio.Future[TaskStatus | None]
    seen: TaskState | None
    interval: float
    report_at: float
    deadline: float

    def repeats(self, status: TaskStatus | None, now: float) -> float | None:
        """The next check time when ``status`` need not wake the wait, else None."""
        if status is None or status.state is not self.seen or now >= self.report_at:
            return None
        next_at = _next_check(self.interval, now)
        return next_at if next_at < self.deadline else None


class _Batcher:
    """Every status check of one connection in this event loop: one timer and one batched read per
    check time, shared by all the waits due then.

    A wait asks for the status it is due at (``at``, wall clock) and awaits it; it holds no timer of
    its own. Checks due within BATCH_WINDOW of each other share one send time, so the waits on one
    poll tick (they compute the same tick) cost one timer and a ``retrieve_batch`` call per 50 ids,
    not a sleep, a wake-up and a lookup each. A check whose answer repeats what its wait has seen
    is queued again for the next tick without waking the wait (``_Check``).
    """

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        #: send time (wall clock) -> veo_task_id -> the waits' checks
        self.due: dict[float, dict[str, list[_Check]]] = {}
        self.reads: set[asyncio.Task[None]] = set()  # strong references: a pending task may be collected

    async def status(
        self,
        veo_task_id: str,
        at: float,
        *,
        seen: TaskState | None,
        interval: float,
        report_at: float,
        deadline: float,
    ) -> TaskStatus | None:
        """The job's status, read at wall time ``at`` at the earliest (``None`` if the API does not
        know the id yet): the first one that is news to a wait that has seen ``seen`` (``_Check``)."""
        fut: asyncio.Future[TaskStatus | None] = asyncio.get_running_loop().create_future()
        self._queue(veo_task_id, _Check(fut, seen, interval, report_at, deadline), at)
        return await fut

    def _queue(self, veo_task_id: str, check: _Check, at: float) -> None:
        loop = asyncio.get_running_loop()
        earliest = max(at, time.time())
        send_at = next((t for t in self.due if earliest <= t <= earliest + BATCH_WINDOW), None)
        if send_at is None:
            send_at = earliest + BATCH_WINDOW
            self.due[send_at] = {}
            loop.call_at(loop.time() + (send_at - time.time()), self._send, send_at)
        self.due[send_at].setdefault(veo_task_id, []).append(check)

    def _send(self, send_at: float) -> None:
        waiting = self.due.pop(send_at, {})
        # A wait cancelled meanwhile (its trigger was removed) is not asked about.
        waiting = {i: checks for i, checks in waiting.items() if not all(c.fut.done() for c in checks)}
        if waiting:
            read = asyncio.ensure_future(self._read(waiting))
            self.reads.add(read)
            read.add_done_callback(self.reads.discard)

    async def _read(self, waiting: dict[str, list[_Check]]) -> None:
        from veo_provider.hooks.veo import VeoHook

        try:
            records = await VeoHook(self.conn_id).aget_tasks(list(waiting))
        except BaseException as exc:
            _settle(waiting, exc)
            if not isinstance(exc, Exception):  # cancelled: the waits got it too; let the loop see it
                raise
            return
        found = {r.id: decide_state(r) for r in records if r.id in waiting}
        now = time.time()
        for veo_task_id, checks in waiting.items():
            status = found.get(veo_task_id)
            for check in checks:
                if check.fut.done():
                    continue
                if (next_at := check.repeats(status, now)) is not None:
                    self._queue(veo_task_id, check, next_at)
                else:
                    check.fut.set_result(status)


def _settle(waiting: dict[str, list[_Check]], exc: BaseException) -> None:
    for checks in waiting.values():
        for check in checks:
            if not check.fut.done():
                check.fut.set_exception(exc)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Batcher]] = weakref.WeakKeyDictionary()


def _batcher(conn_id: str) -> _Batcher:
    per_loop = _batchers.setdefault(asyncio.get_running_loop(), {})
    if conn_id not in per_loop:
        per_loop[conn_id] = _Batcher(conn_id)
    return per_loop[conn_id]


#: The soonest a check after a check may be (a tick that is about to pass is not skipped for the next).
MIN_DELAY = 0.05


def _next_check(interval: float, now: float) -> float:
    """The next multiple of ``interval`` on the wall clock, at least MIN_DELAY away. Every wait of the
    same interval computes the very same number, so their checks share one timer and one batch."""
    if interval <= 0:
        return now + MIN_DELAY
    tick = (math.floor(now / interval) + 1) * interval
    return tick if tick - now >= MIN_DELAY else tick + interval


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

    def due_at(self) -> float:
        """When (wall clock) an unchanged state is worth a line again."""
        return time.time() + PROGRESS_EVERY - (time.monotonic() - self.said_at)


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
        check_at = time.time() + delay
        while True:
            remaining = self.deadline - time.time()
            if self.veo_task_id is None or check_at >= self.deadline:
                await asyncio.sleep(max(remaining, 0))  # no check left before the deadline, or nothing to poll
                return self._event("timeout", started, last=progress.last)
            status, misses, error = await self._check(misses, check_at, progress)
            if error is not None:
                return error
            now = time.time()
            check_at = _next_check(self.poll_interval, now)
            if status is not None:
                if status.state is TaskState.SUCCEEDED:
                    return self._event("success", started, status=status)
                if status.state is TaskState.FAILED:
                    return self._event("failed", started, status=status)
                progress.saw(status.state, check_at - now)

    async def _check(
        self, misses: int, at: float, progress: _Progress
    ) -> tuple[TaskStatus | None, int, dict[str, Any] | None]:
        """The status check due at ``at``, or the first after it that is news to ``progress`` (a new
        state, its next line, the last check before the deadline): (status or None, consecutive
        misses, error event if the wait must end)."""
        from veo_provider.exceptions import VeoError
        from veo_provider.hooks.veo import VeoHook

        assert self.veo_task_id is not None
        try:
            status = await _batcher(self.conn_id).status(
                self.veo_task_id,
                at,
                seen=progress.last,
                interval=self.poll_interval,
                report_at=progress.due_at(),
                deadline=self.deadline,
            )
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
