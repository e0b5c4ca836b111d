"""Jobs of the Veo API emulator: what "the same paid request" is, and one accepted submission."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from veo_provider.testing.emulator.faults import FailJobsFault

__all__ = ["ADMIN_PREFIX", "DELIVERY_KEYS", "Job", "body_key"]

#: Prefix of the emulator's own endpoints (stats, faults, reset, jobs, videos).
ADMIN_PREFIX = "/_emulator"
#: Body keys that do not change what is generated (so they do not make a body "new").
DELIVERY_KEYS = ("callback_url", "async")


def body_key(path: str, body: Mapping[str, Any]) -> str:
    """Identity of "the same paid request": path + canonical JSON without delivery keys.

    A resubmission with a new callback URL (or async flag) is still a duplicate, which is
    exactly what exactly-once tests must catch.
    """
    kept = {k: v for k, v in body.items() if k not in DELIVERY_KEYS}
    return f"{path} {json.dumps(kept, sort_keys=True, separators=(',', ':'), ensure_ascii=False)}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


@dataclasses.dataclass
class Job:
    """One accepted submission; its state follows from the clock, so it needs no worker."""

    task_id: str
    trace_id: str
    video_id: str
    path: str
    type: str
    request: dict[str, Any]
    body_key: str
    mode: Literal["sync", "async", "callback"]
    callback_url: str | None
    created_at: float
    generation_seconds: float
    pending_seconds: float
    video_url: str
    epoch: int
    failure: FailJobsFault | None = None
    source_video_id: str | None = None
    #: Which of the emulator's pictures its video shows, and at which resolution (see ``media``).
    picture: int = 0
    resolution: str = "720p"
    callback_lose: bool = False
    callback_delay: float = 0.0
    callback_copies: int = 1
    callbacks: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def finished_at(self) -> float:
        return self.created_at + self.generation_seconds

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.finished_at - (time.time() if now is None else now))

    def state(self, now: float | None = None) -> Literal["pending", "running", "succeeded", "failed"]:
        now = time.time() if now is None else now
        if now >= self.finished_at:
            return "failed" if self.failure else "succeeded"
        return "pending" if now < self.created_at + self.pending_seconds else "running"

    def final_body(self) -> dict[str, Any]:
        """The sync answer = the callback body = the finished task's ``response``."""
        if self.failure:
            return {
                "success": False,
                "task_id": self.task_id,
                "trace_id": self.trace_id,
                "error": {"code": self.failure.code, "message": self.failure.message},
            }
        return {
            "success": True,
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "data": [
                {
                    "id": self.video_id,
                    "video_url": self.video_url,
                    "created_at": _stamp(self.created_at),
                    "complete_at": _stamp(self.finished_at),
                    "state": "succeeded",
                }
            ],
        }

    def record(self, now: float | None = None) -> dict[str, Any]:
        """The ``/veo/tasks`` record: ``response`` absent while pending."""
        now = time.time() if now is None else now
        state = self.state(now)
        rec: dict[str, Any] = {
            "id": self.task_id,
            "trace_id": self.trace_id,
            "type": self.type,
            "created_at": self.created_at,
            "started_at": self.created_at,
            "request": self.request,
        }
        if state == "running":
            rec["response"] = {
                "success": True,
                "task_id": self.task_id,
                "trace_id": self.trace_id,
                "data": [{"id": self.video_id, "created_at": _stamp(self.created_at), "state": "running"}],
            }
        elif state in ("succeeded", "failed"):
            rec["finished_at"] = self.finished_at
            rec["elapsed"] = self.finished_at - self.created_at
            rec["response"] = self.final_body()
        return rec

    def summary(self) -> dict[str, Any]:
        """What ``/_emulator/jobs`` shows about a job (more than the API would)."""
        return {
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "video_id": self.video_id,
            "path": self.path,
            "mode": self.mode,
            "state": self.state(),
            "request": self.request,
            "body_key": self.body_key,
            "callback_url": self.callback_url,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "video_url": self.video_url,
            "failure": self.failure.model_dump() if self.failure else None,
            "callbacks": list(self.callbacks),
        }
