"""What crosses process boundaries: XCom result, trigger event, ledger entry, stored callback.

Each shape has one builder and one reader here, so the worker, the triggerer and the api-server
agree on it. Stored keys keep the names already written by deployed versions (``task_id`` for
the Veo job in the ledger entry and the stored callback), so in-flight retries survive an upgrade.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from veo_provider.models.responses import TaskRecord, TaskState, TaskStatus, VeoResult, VideoItem, decide_state

__all__ = [
    "VEO_TRIGGER_CLASSPATH",
    "XCOM_KEYS",
    "LedgerEntry",
    "StoredCallback",
    "VeoEvent",
    "result_to_xcom",
]

#: How Airflow names the trigger in its ``trigger`` table; the receiver resumes only tasks deferred on it.
VEO_TRIGGER_CLASSPATH = "veo_provider.triggers.veo.VeoTrigger"
#: Query parameter of a signed callback URL that carries the submission key (see callbacks/signing.py).
SUBMISSION_KEY_PARAM = "key"
#: How much of a failed job's reason the ledger entry keeps (the task log has all of it).
MAX_REASON = 2000


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# ------------------------------------------------------------------------------------ XCom


#: Keys of the XCom dict every Veo task returns (documented in the README).
XCOM_KEYS = (
    "task_id",
    "video_id",
    "video_url",
    "state",
    "trace_id",
    "created_at",
    "complete_at",
    "model",
    "action",
    "output_path",
    "prompt",
    "resolution",
)
#: What the XCom result repeats of the request that was actually sent.
SENT_KEYS = ("model", "action", "prompt", "resolution")


def sent_summary(body: dict[str, Any]) -> dict[str, Any]:
    """The part of a request body the XCom result reports (kept in the ledger for later tries)."""
    return {key: body.get(key) for key in SENT_KEYS}


def result_to_xcom(
    status: TaskStatus, *, sent: dict[str, Any] | None = None, output_path: str | None = None
) -> dict[str, Any]:
    """The plain, JSON-able dict a Veo task returns (first video of the result)."""
    first = (status.result.data or [VideoItem()])[0] if status.result else VideoItem()
    sent = sent or {}
    return {
        "task_id": status.veo_task_id,
        "video_id": first.id,
        "video_url": first.video_url,
        "state": status.state.value,
        "trace_id": status.trace_id,
        "created_at": first.created_at,
        "complete_at": first.complete_at,
        "model": sent.get("model"),
        "action": sent.get("action"),
        "output_path": output_path,
        "prompt": sent.get("prompt"),
        "resolution": sent.get("resolution"),
    }


# ------------------------------------------------------------------------------ ledger entry


class LedgerEntry(BaseModel):
    """What one task instance paid for: ``submitting`` before the paid POST, ``submitted`` after.

    ``refused`` (the API definitely refused it) lives only while the spending cap's reservation
    is handed back.

    Kept in Airflow's task state store under ``veo_submission`` (see ``ledger/``).
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    state: Literal["submitting", "submitted", "refused"]
    key: str
    veo_task_id: str | None = Field(default=None, alias="task_id")
    trace_id: str | None = None
    endpoint: str | None = None
    #: The connection the submission went through: only its callback secret may wake this task.
    conn_id: str | None = None
    #: Hash of what was asked for: a retry resumes the job only if the request is unchanged.
    fingerprint: str | None = None
    #: What the XCom result reports of the request (``sent_summary``), for a later try or resume.
    sent: dict[str, Any] | None = None
    #: The spending caps this submission is counted against (cap name -> limit).
    caps: dict[str, int] | None = None
    #: The API's code and reason once the job failed: the Videos tab's card shows them.
    error_code: str | None = None
    error_message: str | None = None
    at: str = ""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def submitted(self, veo_task_id: str, trace_id: str | None) -> LedgerEntry:
        return self.model_copy(update={"state": "submitted", "veo_task_id": veo_task_id, "trace_id": trace_id})

    def failed(self, code: str | None, message: str | None) -> LedgerEntry:
        """This entry with the API's reason for failing its job (cut: the store is not a log)."""
        return self.model_copy(update={"error_code": code, "error_message": message[:MAX_REASON] if message else None})

    def reconcile(self, record: TaskRecord) -> LedgerEntry | None:
        """This lost submission's entry, completed by ``record``, if the API shows the job is ours.

        A callback only names which job a lost submission created; the job's own record (read
        from the API with our token) must carry our submission key in its ``callback_url``.
        """
        if self.state != "submitting" or not record.id:
            return None
        url = (record.request or {}).get("callback_url")
        if not isinstance(url, str):
            return None
        keys = parse_qs(urlsplit(url).query).get(SUBMISSION_KEY_PARAM, [])
        if keys != [self.key]:
            return None
        return self.submitted(record.id, record.trace_id or self.trace_id)


# ---------------------------------------------------------------------------- stored callback


class StoredCallback(BaseModel):
    """What the receiver keeps of an authenticated callback: a wake-up, never a result.

    The body itself is not kept (it is unauthenticated content); only which job it names,
    which state it claims, and a hash to recognise the same callback sent again.
    Kept in the task instance's task state store under ``veo_callback`` (see ``ledger/``).
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    key: str
    veo_task_id: str = Field(alias="task_id")
    claimed_state: str | None = None
    body_sha256: str | None = None
    received_at: str = Field(default_factory=_now)

    @classmethod
    def of(cls, key: str, body: bytes, veo_task_id: str, claimed: TaskStatus) -> StoredCallback:
        digest = hashlib.sha256(body).hexdigest()
        return cls(key=key, veo_task_id=veo_task_id, claimed_state=claimed.state.value, body_sha256=digest)

    @classmethod
    def read(cls, raw: Any) -> StoredCallback | None:
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValueError:
            return None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def claims_done(self) -> bool:
        return self.claimed_state in (TaskState.SUCCEEDED.value, TaskState.FAILED.value)

    def same_as(self, other: StoredCallback) -> bool:
        return (self.key, self.veo_task_id, self.body_sha256) == (other.key, other.veo_task_id, other.body_sha256)


# ----------------------------------------------------------------------------- trigger event

EventKind = Literal["success", "failed", "timeout", "error", "callback"]


class VeoEvent(BaseModel):
    """The one event that resumes a waiting Veo task.

    ``poll`` events come from an authenticated API read in the trigger and carry its result;
    ``callback`` events are wake-ups only: the worker reads the job before acting on them.
    """

    model_config = ConfigDict(extra="ignore")

    status: EventKind
    source: Literal["poll", "callback"] = "poll"
    veo_task_id: str | None = None
    submission_key: str | None = None
    elapsed: float | None = None
    #: The wait's absolute deadline (UNIX time), so a task woken early waits on to the same end.
    deadline: float | None = None
    last_state: str | None = None
    trace_id: str | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: The try that deferred for this wait (trigger events): an event never answers another try.
    deferred_in_try: int | None = None

    @classmethod
    def build(
        cls,
        kind: EventKind,
        *,
        source: Literal["poll", "callback"],
        veo_task_id: str | None,
        submission_key: str | None,
        status: TaskStatus | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The JSON-able payload (trigger events and the receiver's resume pass through serde)."""
        if status is not None:
            fields["trace_id"] = status.trace_id
            fields["result"] = status.result.model_dump(mode="json", exclude_none=True) if status.result else None
            fields["error_code"] = status.error_code
            fields["error_message"] = status.error_message
        event = cls(status=kind, source=source, veo_task_id=veo_task_id, submission_key=submission_key, **fields)
        return event.model_dump(mode="json")

    @classmethod
    def read(cls, payload: dict[str, Any]) -> VeoEvent:
        return cls.model_validate(payload)

    def job_status(self) -> TaskStatus:
        """The job's status carried by a ``success`` or ``failed`` poll event."""
        status = decide_state(VeoResult.model_validate(self.result or {}))
        if self.status == "failed" and status.state is not TaskState.FAILED:
            status = TaskStatus(state=TaskState.FAILED, result=status.result)
        status.veo_task_id = status.veo_task_id or self.veo_task_id
        status.trace_id = status.trace_id or self.trace_id
        status.error_code = status.error_code or self.error_code
        status.error_message = status.error_message or self.error_message
        return status
