"""One error hierarchy for everything the Veo API (or the way to it) can do wrong.

Errors that a retry cannot fix (bad token, no balance, moderation, bad request) also derive
from ``AirflowFailException`` so the task fails at once instead of burning its retries.
Messages never contain the token: they are built from the API's error body only.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowNotFoundException

__all__ = [
    "HOW_TO_RESOLVE",
    "SpendingCapError",
    "SpendingCapMisconfigured",
    "VeoAddressError",
    "VeoAuthError",
    "VeoBadRequestError",
    "VeoConfigError",
    "VeoConnectionNotFound",
    "VeoDownloadTooLarge",
    "VeoError",
    "VeoForbiddenError",
    "VeoInsufficientBalanceError",
    "VeoJobFailedError",
    "VeoModerationError",
    "VeoNotFoundError",
    "VeoRateLimitError",
    "VeoRedirectError",
    "VeoServerError",
    "VeoSubmissionUncertain",
    "VeoTransportError",
    "error_from_response",
    "uncertain_message",
]


class VeoError(AirflowException):
    """Base of every Veo error; carries what the API said (never the request's headers)."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.trace_id = trace_id
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [self.message]
        meta = [f"HTTP {self.status}" if self.status else "", f"code={self.code}" if self.code else ""]
        if self.trace_id:
            meta.append(f"trace_id={self.trace_id}")
        if any(meta):
            parts.append("(" + ", ".join(m for m in meta if m) + ")")
        return " ".join(parts)

    def __reduce__(self) -> Any:  # keep keyword-only attributes across pickling (logs, subprocesses)
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))


def _rebuild(cls: type[VeoError], message: str, state: dict[str, Any]) -> VeoError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class _Final(VeoError, AirflowFailException):
    """A retry would get the same answer: fail the task without Airflow retries."""


class VeoAuthError(_Final):
    """401 (or a token code): the connection's API token is missing, wrong or expired."""


class VeoBadRequestError(_Final):
    """400: the API refused the request's content."""


class VeoForbiddenError(_Final):
    """403: the account may not run this job."""


class VeoInsufficientBalanceError(VeoForbiddenError):
    """403 ``used_up``: top up the AceData Cloud balance."""


class VeoModerationError(VeoForbiddenError):
    """403 ``forbidden``: the content was refused by moderation."""


class VeoNotFoundError(_Final):
    """404: unknown endpoint or task id."""


class VeoJobFailedError(_Final):
    """The job ran and the API reports it failed (code and reason from the API)."""

    @classmethod
    def of(
        cls, veo_task_id: str | None, code: str | None, reason: str | None, trace_id: str | None
    ) -> VeoJobFailedError:
        return cls(
            f"Veo job {veo_task_id} failed at the API: {code or 'failed'}: {reason or 'no reason given'}",
            code=code,
            trace_id=trace_id,
        )


class VeoRateLimitError(VeoError):
    """429: slow down; ``retry_after`` is the server's hint in seconds, when it gave one."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class VeoServerError(VeoError):
    """5xx: the API failed; reads are retried, paid submissions become uncertain."""

    retryable = True


class VeoTransportError(VeoError):
    """The network failed before an HTTP answer (DNS, connect, timeout, dropped connection)."""

    retryable = True

    def __init__(self, message: str, *, sent: bool = True, **kw: Any) -> None:
        #: False only when the request provably never reached the server (connect failure).
        self.sent = sent
        super().__init__(message, **kw)


class SpendingCapError(VeoError):
    """The spending cap could not be checked (api-server unreachable, or the request was refused).

    Nothing was sent to the Veo API, so a retry may ask again.
    """

    retryable = True


class SpendingCapMisconfigured(SpendingCapError, AirflowFailException):
    """The spending cap cannot be asked at all (no shared secret, or the api-server refuses this
    worker's credential): a retry would get the same answer. Nothing was sent."""

    retryable = False


class VeoSubmissionUncertain(_Final):
    """A paid submission may have reached the API but its answer was lost.

    It is never resent automatically (that could pay twice). The job, if it exists, is found
    again through its callback (which carries our submission key) or by checking the AceData
    Cloud console; see the operator's ``on_uncertain_submission``.
    """

    def __init__(self, message: str, *, cause: VeoError | None = None, **kw: Any) -> None:
        self.cause = cause
        if cause is not None:
            kw.setdefault("status", cause.status)
            kw.setdefault("code", cause.code)
            kw.setdefault("trace_id", cause.trace_id)
        super().__init__(message, **kw)


_BY_STATUS: dict[int, type[VeoError]] = {
    400: VeoBadRequestError,
    401: VeoAuthError,
    403: VeoForbiddenError,
    404: VeoNotFoundError,
    429: VeoRateLimitError,
}
_BY_CODE: dict[str, type[VeoError]] = {
    "invalid_token": VeoAuthError,
    "token_expired": VeoAuthError,
    "token_mismatched": VeoAuthError,
    "no_token": VeoAuthError,
    "used_up": VeoInsufficientBalanceError,
    "forbidden": VeoModerationError,
    "disabled": VeoForbiddenError,
    "too_many_requests": VeoRateLimitError,
}
_STATUS_OF_CODE = {
    "invalid_token": 401,
    "token_expired": 401,
    "used_up": 403,
    "forbidden": 403,
    "disabled": 403,
    "no_api": 404,
    "too_many_requests": 429,
    "api_error": 500,
    "timeout": 504,
}
_HINTS: dict[type[VeoError], str] = {
    VeoAuthError: "check the API token in the Veo connection's password",
    VeoInsufficientBalanceError: "top up the AceData Cloud balance",
    VeoModerationError: "change the prompt or images",
    VeoRateLimitError: "the API asks to slow down: fewer concurrent Veo tasks (e.g. an Airflow pool) help",
}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        from time import time

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time())
        except (TypeError, ValueError):
            return None


def error_from_response(status: int, body: Any, headers: Any = None) -> VeoError:
    """Map an HTTP error answer to the matching VeoError (status first, then the API code)."""
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    code = err.get("code") or (body.get("code") if isinstance(body, dict) else None)
    message = err.get("message") or (body.get("message") if isinstance(body, dict) else None)
    trace_id = body.get("trace_id") if isinstance(body, dict) else None
    if status < 400:  # an error inside a 2xx answer: let the code say what it is
        status = _STATUS_OF_CODE.get(str(code), 400)
    if status >= 500:
        cls: type[VeoError] = VeoServerError
    else:
        cls = _BY_CODE.get(str(code), _BY_STATUS.get(status, VeoBadRequestError))
        # A code can refine a status (403 used_up) but never turn a 4xx into a retryable one, or back.
        if status in _BY_STATUS and not issubclass(cls, _BY_STATUS[status]) and cls is not VeoAuthError:
            cls = _BY_STATUS[status]
    text = f"Veo API error: {message or 'no message'}"
    if hint := next((h for k, h in _HINTS.items() if issubclass(cls, k)), None):
        text += f" ({hint})"
    kwargs: dict[str, Any] = {"status": status, "code": code, "trace_id": trace_id}
    if cls is VeoRateLimitError:
        kwargs["retry_after"] = _retry_after(headers)
    return cls(text, **kwargs)


class VeoConfigError(_Final, ValueError):
    """The Veo connection is misconfigured (an extra, the Base URL, the token): a retry reads the same."""


class VeoConnectionNotFound(VeoError, AirflowNotFoundException):
    """The Veo connection is not defined where it was read (the message says where that looks)."""


class VeoDownloadTooLarge(_Final):
    """A video is bigger than the connection's ``max_download_mb``: refused, not retried."""


class VeoRedirectError(_Final):
    """Too many redirects (a loop or a misconfigured URL), or an API redirect to another origin."""


class VeoAddressError(_Final):
    """A URL whose host the address policy refuses (loopback, private, link-local, metadata)."""


HOW_TO_RESOLVE = (
    "To resolve: look for the job in the AceData Cloud console; if none exists, clear this task with "
    "on_uncertain_submission='resubmit' (or delete its task state key 'veo_submission'); with "
    "wait_mode='callback' the job's callback finds it automatically."
)


def uncertain_message(submission_key: str, at: str) -> str:
    """What is uncertain about a submission whose answer was lost (the job may exist)."""
    return (
        f"An earlier submission of this task (submission key {submission_key}, at {at}) may have "
        "created a Veo job whose task id never reached Airflow. It was not resubmitted, to avoid "
        "paying twice."
    )
