"""Fault settings of the Veo API emulator: one pydantic model per fault, and ``Faults`` (all of them).

A fault fires for the next ``times`` matching requests (``None``: until cleared), optionally only on
one ``path`` or for bodies containing ``match``; ``EmulatorState.take`` counts it down.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FAULT_NAMES",
    "CallbackDelayFault",
    "CallbackDuplicateFault",
    "CallbackLoseFault",
    "DelayFault",
    "DownloadCutFault",
    "DropResponseFault",
    "ErrorFault",
    "FailJobsFault",
    "Faults",
    "ModerationFault",
    "RateLimitFault",
    "UsedUpFault",
]


class _Rule(BaseModel):
    """One fault: fires for the next ``times`` matching requests (``None``: until cleared)."""

    model_config = ConfigDict(extra="forbid")

    times: int | None = Field(default=1, ge=0)
    #: ``/veo/videos`` (or ``videos``) limits the fault to that path; ``None``/``"*"``: all paths.
    path: str | None = None
    #: Only requests whose JSON body contains this text (job faults: the submission's body), e.g. a
    #: marker in one task's prompt, so that concurrent tests can aim at one job; ``None``: any request.
    #: A request without a body (a video download) never matches.
    match: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # ``{"rate_limit": 2}`` is the same as ``{"rate_limit": {"times": 2}}``.
        if isinstance(data, int) and not isinstance(data, bool):
            return {"times": data}
        return data

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is None or v.strip() in ("", "*", "all"):
            return None
        v = v.strip()
        return v if v.startswith("/") else f"/veo/{v}"


class RateLimitFault(_Rule):
    """429 ``too_many_requests`` with ``Retry-After`` (no job is created)."""

    retry_after: int = Field(default=1, ge=0)
    message: str = "Too many requests, you have exceeded the rate limit."


class ErrorFault(_Rule):
    """500 ``api_error`` or 504 ``timeout``; ``after_create``: the job exists all the same."""

    after_create: bool = False
    message: str | None = None


class DelayFault(_Rule):
    """Slow answer: by default the job is created first, then the answer waits ``seconds``.

    ``before=True`` waits before anything (auth, validation, job); if the client has gone away
    by then, the request is abandoned without creating a job (``requests_abandoned``).
    """

    seconds: float = Field(ge=0)
    before: bool = False


class DropResponseFault(_Rule):
    """Create the job, then close the connection without answering."""


class FailJobsFault(_Rule):
    """The next jobs end ``failed`` (answer, callback and task record carry the error)."""

    code: str = "generation_failed"
    message: str = "Video generation failed: the upstream model returned no video."
    #: HTTP status of a synchronous answer for such a job.
    http_status: int = Field(default=200, ge=100, le=599)


class ModerationFault(_Rule):
    """403 ``forbidden`` for prompts containing one of ``words`` (case-insensitive)."""

    times: int | None = Field(default=None, ge=0)
    words: list[str] = Field(min_length=1)
    message: str = "The prompt was refused by content moderation."

    @model_validator(mode="before")
    @classmethod
    def _words_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"words": [data]}
        if isinstance(data, list):
            return {"words": data}
        return data


class UsedUpFault(_Rule):
    """403 ``used_up``: the account's balance is exhausted (no job is created)."""

    message: str = "Your balance is used up, please top up."


class CallbackLoseFault(_Rule):
    """The next callback jobs never call back (``callbacks_lost``)."""


class CallbackDuplicateFault(_Rule):
    """The next callback jobs call back ``copies`` times."""

    copies: int = Field(default=2, ge=2)


class CallbackDelayFault(_Rule):
    """The next callback jobs call back ``seconds`` after the job is done."""

    seconds: float = Field(ge=0)


class DownloadCutFault(_Rule):
    """The next video downloads close the connection after ``after_bytes`` (default: half)."""

    after_bytes: int | None = Field(default=None, ge=0)


class Faults(BaseModel):
    """Every fault setting. Setting one (in-process or over HTTP) replaces that key only."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: RateLimitFault | None = None
    server_error: ErrorFault | None = None
    gateway_timeout: ErrorFault | None = None
    slow_response: DelayFault | None = None
    drop_response: DropResponseFault | None = None
    fail_jobs: FailJobsFault | None = None
    moderation: ModerationFault | None = None
    used_up: UsedUpFault | None = None
    callback_lose: CallbackLoseFault | None = None
    callback_duplicate: CallbackDuplicateFault | None = None
    callback_delay: CallbackDelayFault | None = None
    download_cut: DownloadCutFault | None = None
    #: Size in bytes of every served video when the URL has no ``?size=`` (persistent).
    video_size: int | None = Field(default=None, ge=0)
    #: Generation time of jobs created from now on, instead of the config's (persistent).
    generation_seconds: float | None = Field(default=None, ge=0)


FAULT_NAMES: tuple[str, ...] = tuple(Faults.model_fields)
