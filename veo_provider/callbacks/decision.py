"""The callback decision: authenticate, parse, decide, wake. Nothing here touches a database.

A callback is only a wake-up: the signed URL (the only authentication there is) is checked
before the body is read, and the deferred task is resumed at once, the way Airflow's
human-in-the-loop route does. The task then reads the job from the API itself; nothing in a
body decides a state or a video URL. A small stored callback (never the body) is kept on the
task instance whenever the worker may still need it: the task was not resumed, or its ledger
does not name the job yet (a lost submission answer). The database is behind ``CallbackPort``
(``airflow_port.AirflowCallbackPort`` in the api-server), so every rule below is tested without one.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from veo_provider.callbacks.limits import load_json_object
from veo_provider.callbacks.signing import CALLBACK_PARAMS, CallbackRejected, CallbackTarget, verify_callback
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH, LedgerEntry, StoredCallback, VeoEvent
from veo_provider.models.responses import TaskStatus, VeoResult, decide_state
from veo_provider.resume_hold import RESUME_HOLD

__all__ = [
    "FORBIDDEN",
    "LOST_ANSWER_WAIT",
    "CallbackPort",
    "LoadedTaskInstance",
    "authenticate",
    "handle_callback",
    "where",
]

T = TypeVar("T")

#: Longest a callback for a just-deferred lost submission is held before it resumes the task.
LOST_ANSWER_WAIT = 3.0
#: What every authentication failure answers, whatever the reason (logged server-side only).
FORBIDDEN = "the callback URL is not valid"


class LoadedTaskInstance(NamedTuple):
    """What the decision needs to know about the task instance a callback names (stored values raw)."""

    state: str | None
    ledger: dict[str, Any] | None
    stored_callback: dict[str, Any] | None
    trigger_classpath: str | None
    trigger_kwargs: dict[str, Any] | None
    #: Seconds since the task deferred (its trigger row was created); ``None`` if not deferred.
    deferred_seconds: float | None = None


class CallbackPort(ABC):
    """The receiver's database port: the Airflow side, kept apart so the decision is tested without one.

    The decision calls ``load``, ``store`` and ``resume`` inside one ``transaction(target)``,
    so a port that can should make them one atomic unit with the task instance locked.
    """

    async def call(self, target: CallbackTarget, fn: Callable[..., T], *args: Any) -> T:
        """Run the blocking ``fn(*args)``, which opens ``transaction(target)``, off the event loop.

        A port may run the calls of several callbacks in one database transaction (the Airflow
        port does, under load), as long as each sees the effects of those before it.
        """
        return await run_in_threadpool(fn, *args)

    @abstractmethod
    def secrets_for(self, conn_id: str) -> list[str]:
        """The connection's callback secrets (current first); empty if unknown or unconfigured."""

    def reads_secrets_at_once(self, conn_id: str) -> bool:
        """True if ``secrets_for(conn_id)`` would not block now (they are cached), so it need not leave
        the event loop (default: False)."""
        return False

    def transaction(self, target: CallbackTarget) -> contextlib.AbstractContextManager[Any]:
        """Scope in which load/store/resume form one unit (default: none)."""
        return contextlib.nullcontext()

    @abstractmethod
    def load(self, target: CallbackTarget) -> LoadedTaskInstance | None:
        """The task instance's state, ledger, stored callback and trigger; ``None`` if no such TI."""

    @abstractmethod
    def store(self, target: CallbackTarget, stored: dict[str, Any]) -> None:
        """Write the stored callback (a ``StoredCallback`` dump) under STORED_CALLBACK_KEY."""

    @abstractmethod
    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        """Resume the deferred task instance with ``payload`` as its trigger event; False if it was not."""


def where(params: Mapping[str, str]) -> str:
    """Which task instance a request names, for logs (never the signature or the whole query)."""
    parts = (params.get(p, "?")[:250] for p in ("dag_id", "run_id", "task_id", "map_index"))
    return "/".join(repr(p) for p in parts)


def authenticate(port: CallbackPort, params: Mapping[str, str], *, now: float | None = None) -> CallbackTarget:
    """The verified target of a signed URL; any failure is one uniform 403 (the reason is only logged).

    Blocking (reads the connection): run it in a thread from async code.
    """
    conn_id = params.get("conn_id")
    secrets = port.secrets_for(conn_id) if conn_id and all(params.get(p) for p in CALLBACK_PARAMS) else []
    try:
        return verify_callback(params, secrets, now=now)
    except CallbackRejected as exc:
        raise CallbackRejected(403, FORBIDDEN, detail=exc.reason) from None


def _parse_body(body: bytes) -> tuple[TaskStatus, str]:
    """What the body claims (a wake-up hint only) and which job it names; 400 for anything else."""
    data = load_json_object(body)
    veo_task_id = data.get("task_id")  # the vendor's name for its job in the callback body
    if not isinstance(veo_task_id, str) or not veo_task_id.strip() or len(veo_task_id) > 200:
        raise CallbackRejected(400, "the body has no task_id (or an unusable one)")
    try:
        claimed = decide_state(VeoResult.model_validate(data))
    except ValidationError:
        raise CallbackRejected(400, "the body is not a Veo result (unexpected field types)") from None
    return claimed, veo_task_id


def _ledger_of(loaded: LoadedTaskInstance, target: CallbackTarget) -> LedgerEntry:
    """The task's ledger entry if this callback belongs to it; else the refusal (404, 403)."""
    try:
        ledger = LedgerEntry.model_validate(loaded.ledger) if isinstance(loaded.ledger, dict) else None
    except ValueError:
        ledger = None
    if ledger is None or ledger.key != target.submission_key:
        raise CallbackRejected(404, "the task instance has no submission with this key (stale or unknown)")
    if ledger.conn_id != target.conn_id:
        raise CallbackRejected(403, FORBIDDEN, detail="signed for another connection than the task's")
    return ledger


def _is_duplicate(loaded: LoadedTaskInstance, new: StoredCallback) -> bool:
    """True if ``new`` is the callback already stored (the same job, key and body)."""
    old = StoredCallback.read(loaded.stored_callback)
    return old is not None and old.same_as(new)


def _keep(port: CallbackPort, target: CallbackTarget, loaded: LoadedTaskInstance, new: StoredCallback) -> bool:
    """Store ``new`` unless it repeats the stored callback; True if it was a duplicate."""
    old = StoredCallback.read(loaded.stored_callback)
    duplicate = _is_duplicate(loaded, new)
    # A stored callback that claims "done" is never replaced by a later "still running" one; anything else is.
    keep_old = old is not None and old.key == new.key and old.claims_done
    if not duplicate and not (keep_old and not new.claims_done):
        port.store(target, new.dump())
    return duplicate


def _waits_on_it(loaded: LoadedTaskInstance, target: CallbackTarget, stored: StoredCallback) -> bool:
    """True if the task is deferred on our trigger, for this submission and this job, and it claims done."""
    kwargs = loaded.trigger_kwargs or {}
    return (
        stored.claims_done
        and loaded.state == "deferred"
        and loaded.trigger_classpath == VEO_TRIGGER_CLASSPATH
        and kwargs.get("submission_key") == target.submission_key
        and kwargs.get("veo_task_id") in (None, stored.veo_task_id)
    )


def _decide(
    port: CallbackPort, target: CallbackTarget, stored: StoredCallback, event: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Resume the task if it waits on this job, keep the stored callback if the worker may need it:
    (answer, seconds to wait before resuming)."""
    with port.transaction(target):
        loaded = port.load(target)
        if loaded is None:
            raise CallbackRejected(404, "no such task instance")
        ledger = _ledger_of(loaded, target)
        if ledger.veo_task_id and ledger.veo_task_id != stored.veo_task_id:
            raise CallbackRejected(409, "the body's task_id is not the job this submission created")
        resumed, wait = _wake(port, target, loaded, stored, event)
        if resumed and ledger.veo_task_id is not None:
            # The woken task reads the job its ledger names; a stored callback is read only by a try
            # that does not know its job yet, or one that has not deferred: neither is this one.
            return {"status": "duplicate" if _is_duplicate(loaded, stored) else "resumed", "resumed": True}, 0.0
        duplicate = _keep(port, target, loaded, stored)
        return {"status": "duplicate" if duplicate else "stored", "resumed": resumed}, wait


def _wake(
    port: CallbackPort,
    target: CallbackTarget,
    loaded: LoadedTaskInstance,
    stored: StoredCallback,
    event: dict[str, Any],
) -> tuple[bool, float]:
    """Resume the task now if it waits on this job: (resumed, seconds to wait before resuming it instead)."""
    if not _waits_on_it(loaded, target, stored):
        return False, 0.0
    # Airflow's resume race (resume_hold.py): a task deferred a moment ago is not resumed here; its
    # trigger's early check reads the API at RESUME_HOLD and resumes it. A trigger that knows no
    # job (its submission answer was lost) cannot: only this callback can resume that rare one,
    # after a short wait that callers sit through (the vendor's own timeout is unknown).
    age = loaded.deferred_seconds
    if age is None or age >= RESUME_HOLD:
        return port.resume(target, event), 0.0
    if (loaded.trigger_kwargs or {}).get("veo_task_id"):
        return False, 0.0
    return False, min(RESUME_HOLD - age, LOST_ANSWER_WAIT)


def _resume(port: CallbackPort, target: CallbackTarget, event: dict[str, Any]) -> bool:
    with port.transaction(target):
        return port.resume(target, event)


async def handle_callback(port: CallbackPort, target: CallbackTarget, body: bytes) -> dict[str, Any]:
    """Parse, wake the task (when the body claims the job is done), keep the stored callback where the
    worker may need it; the 200 answer (``status``: stored, duplicate or resumed) or CallbackRejected."""
    claimed, veo_task_id = _parse_body(body)
    stored = StoredCallback.of(target.submission_key, body, veo_task_id, claimed)
    # The event is built (and small: ids only) before anything is stored.
    event = VeoEvent.build("callback", source="callback", veo_task_id=veo_task_id, submission_key=target.submission_key)
    answer, wait = await port.call(target, _decide, port, target, stored, event)
    if wait > 0:
        # Holding no thread; resume() locks and re-checks the task instance, and the callback is stored.
        await asyncio.sleep(wait)
        answer["resumed"] = await port.call(target, _resume, port, target, event)
    return answer
