"""Signed callback URLs: the only authentication a Veo callback can carry.

The vendor signs nothing, so the URL we hand it names the task instance, the submission key,
the connection and an expiry, and carries an HMAC over all of them. Pure stdlib functions, no
Airflow import: the operator signs in the worker, the receiver verifies in the api-server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "MIN_SECRET_LENGTH",
    "SIGNATURE_VERSION",
    "CallbackRejected",
    "CallbackTarget",
    "sign_callback_url",
    "verify_callback",
]

#: Part of every signed message; a new URL format gets a new tag so old signatures cannot match it.
SIGNATURE_VERSION = "veo-callback-v1"
#: Shorter secrets can be guessed offline from one leaked URL.
MIN_SECRET_LENGTH = 32

#: Query parameter of each ``CallbackTarget`` field (short names keep the URL readable).
_PARAMS: dict[str, str] = {
    "dag_id": "dag_id",
    "run_id": "run_id",
    "task_id": "task_id",
    "map_index": "map_index",
    "submission_key": "key",
    "conn_id": "conn_id",
    "expires_at": "exp",
}
#: Named so that Airflow's access log (which redacts query values whose key contains "token") hides it.
SIGNATURE_PARAM = "sig_token"
#: Every query parameter a callback URL has, in the order it is written.
CALLBACK_PARAMS: tuple[str, ...] = (*_PARAMS.values(), SIGNATURE_PARAM)


@dataclass(frozen=True)
class CallbackTarget:
    """Where a callback belongs: one task instance's one submission, via one connection, until ``expires_at``."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    submission_key: str
    conn_id: str
    expires_at: int

    @classmethod
    def of_task_instance(cls, ti: Any, submission_key: str, conn_id: str, expires_at: int) -> CallbackTarget:
        """The target of a running task instance (Airflow's ``context["ti"]``)."""
        map_index = -1 if ti.map_index is None else int(ti.map_index)
        return cls(ti.dag_id, ti.run_id, ti.task_id, map_index, submission_key, conn_id, expires_at)


class CallbackRejected(Exception):
    """A callback the receiver refuses; ``reason`` is safe to return and log (no signature, no secret)."""

    def __init__(self, status_code: int, reason: str, *, detail: str | None = None) -> None:
        super().__init__(f"{status_code}: {reason}")
        self.status_code = status_code
        self.reason = reason
        #: Why, for the server's log only, when ``reason`` is deliberately uniform.
        self.detail = detail


def _message(target: CallbackTarget) -> bytes:
    """Length-prefixed fields, so no value can spill into its neighbour (``a|b`` vs ``a`` + ``|b``)."""
    parts = [
        SIGNATURE_VERSION,
        target.dag_id,
        target.run_id,
        target.task_id,
        str(int(target.map_index)),
        target.submission_key,
        target.conn_id,
        str(int(target.expires_at)),
    ]
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += b"%d:%s," % (len(raw), raw)
    return bytes(out)


def _sign(target: CallbackTarget, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), _message(target), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_callback_url(base_url: str, target: CallbackTarget, secret: str) -> str:
    """The ``callback_url`` to send with a submission: ``<base_url>/callback?<fields>&sig_token=<hmac>``."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"callback_secret of connection {target.conn_id!r} is too short "
            f"({len(secret or '')} characters, need at least {MIN_SECRET_LENGTH}): set the connection's "
            "'callback_secret' extra to a random value, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    base = (base_url or "").strip()
    if not base.lower().startswith(("https://", "http://")):
        raise ValueError(
            f"callback_base_url of connection {target.conn_id!r} must be an http(s) URL (got {base[:80]!r}): "
            "set it to the api-server's public URL plus '/veo', e.g. https://airflow.example.com/veo"
        )
    for name in ("dag_id", "run_id", "task_id", "submission_key", "conn_id"):
        if not getattr(target, name):
            raise ValueError(f"CallbackTarget.{name} is empty: every field is bound into the signature")
    query = {param: str(getattr(target, field)) for field, param in _PARAMS.items()}
    query[SIGNATURE_PARAM] = _sign(target, secret)
    return f"{base.rstrip('/')}/callback?{urlencode(query)}"


def _parse(params: Mapping[str, str]) -> tuple[CallbackTarget, str]:
    missing = [p for p in CALLBACK_PARAMS if not params.get(p)]
    if SIGNATURE_PARAM in missing:
        raise CallbackRejected(403, "the callback URL is not signed")
    if missing:
        raise CallbackRejected(400, f"the callback URL lacks query parameter(s): {', '.join(missing)}")
    values: dict[str, object] = {field: params[param] for field, param in _PARAMS.items()}
    for field in ("map_index", "expires_at"):
        raw = str(values[field])
        try:
            values[field] = int(raw)
        except ValueError:
            raise CallbackRejected(400, f"query parameter {_PARAMS[field]} must be an integer") from None
        if str(values[field]) != raw:  # "+1", " 1", "01": not what we signed
            raise CallbackRejected(400, f"query parameter {_PARAMS[field]} must be a plain integer")
    return CallbackTarget(**values), params[SIGNATURE_PARAM]  # type: ignore[arg-type]


def verify_callback(params: Mapping[str, str], secrets: Sequence[str], *, now: float | None = None) -> CallbackTarget:
    """Check a callback URL's query against every configured secret (current and previous).

    Raises ``CallbackRejected``: 400 malformed, 403 unsigned or bad signature (or no usable
    secret), 410 expired (only said of an authentic URL).
    """
    target, sig = _parse(params)
    usable = [s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH]
    if not usable:
        raise CallbackRejected(403, "callbacks are not configured for this connection")
    sig_bytes = sig.encode("ascii", "replace")
    # Compare against all secrets (no early exit), so timing does not tell which one matched.
    matched = False
    for secret in usable:
        matched |= hmac.compare_digest(_sign(target, secret).encode("ascii"), sig_bytes)
    if not matched:
        raise CallbackRejected(403, "the callback signature is not valid")
    if (time.time() if now is None else now) > target.expires_at:
        raise CallbackRejected(410, "the callback URL has expired")
    return target
