"""The spending-cap request's credential: the whole request, HMAC-signed with a per-deployment secret.

A worker's task process never sees its own Execution API token (Airflow keeps it in the
supervisor, by design), so the api-server cannot authenticate the task the way the Execution
API does. Instead the worker signs the request itself: action, task instance (with its try's
id), submission key, issued-at and expiry, with a key derived from a secret that the workers
and the api-server share. The api-server verifies it with no database or secrets-backend read,
and acts only on what the credential says. Stdlib HMAC; the key comes from Airflow's config.

Token: ``v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>``, sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from datetime import date, datetime, timezone

from pydantic import Field, ValidationError

from veo_provider.exceptions import SpendingCapMisconfigured
from veo_provider.spending.rules import CapRequest, CapRequestRefused

__all__ = [
    "FORBIDDEN",
    "MAX_TOKEN_LENGTH",
    "SECRET_OPTION",
    "TTL",
    "CapClaims",
    "deployment_key",
    "issue_credential",
    "verify_credential",
]

VERSION = "v1"
#: How long a credential is valid: one request and its retries, never another day.
TTL = 120
#: The longest validity the api-server accepts (a credential issued by a misbehaving worker).
MAX_TTL = 600
#: Clock difference between a worker and the api-server that is tolerated (run NTP).
SKEW = 60
MAX_TOKEN_LENGTH = 2048
#: ``[veo] spending_cap_secret`` (env ``AIRFLOW__VEO__SPENDING_CAP_SECRET``); else ``[api_auth] jwt_secret``.
SECRET_OPTION = ("veo", "spending_cap_secret")
JWT_SECRET_OPTION = ("api_auth", "jwt_secret")
MIN_SECRET_LENGTH = 16
#: Keeps this key apart from any other use of the same secret (Airflow signs its JWTs with it).
_KEY_LABEL = b"airflow-provider-veo spending cap credential v1"
#: What every credential failure answers (the reason is only logged server-side).
FORBIDDEN = "the spending-cap credential is not valid"


class CapClaims(CapRequest):
    """What a credential carries: the request, bound to one try of one task instance, and when."""

    ti_id: str = Field(min_length=1, max_length=64)  # type: ignore[assignment]  # required here
    iat: int = Field(ge=0, le=2**40)
    exp: int = Field(ge=0, le=2**40)

    def request(self) -> CapRequest:
        return CapRequest.model_validate(self.model_dump(exclude={"iat", "exp"}))

    def issued_day(self) -> date:
        """The UTC day the worker asked on: the request counts against that day's counter."""
        return datetime.fromtimestamp(self.iat, timezone.utc).date()


def deployment_key() -> bytes:
    """The HMAC key, derived from the secret the workers and the api-server share.

    ``[veo] spending_cap_secret`` when set, else Airflow's ``[api_auth] jwt_secret`` (which every
    component of a deployment already shares). SpendingCapMisconfigured when neither is usable.
    """
    from airflow.configuration import conf

    explicit = conf.get(*SECRET_OPTION, fallback="") or ""
    secret = explicit or conf.get(*JWT_SECRET_OPTION, fallback="") or ""
    if secret.startswith("{"):  # "{JWT_SECRET_KEY}": a template Airflow never expanded, not a secret
        secret = ""
    where = "[veo] spending_cap_secret" if explicit else "[api_auth] jwt_secret"
    if len(secret) < MIN_SECRET_LENGTH:
        raise SpendingCapMisconfigured(
            "The spending cap cannot sign this worker's request: no usable shared secret "
            f"({where} is {'shorter than 16 characters' if secret else 'not set'}). Set [veo] spending_cap_secret "
            "(env AIRFLOW__VEO__SPENDING_CAP_SECRET, at least 16 characters) to the same value on the workers and "
            "the api-server, or share [api_auth] jwt_secret between them. Nothing was sent to the Veo API."
        )
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, f"{VERSION}.{payload}".encode("ascii"), hashlib.sha256).digest()


def issue_credential(request: CapRequest, key: bytes, *, now: float | None = None, ttl: int = TTL) -> str:
    """The bearer token for ``request`` (which must carry its task instance's id)."""
    issued = int(time.time() if now is None else now)
    claims = CapClaims.model_validate({**request.model_dump(), "iat": issued, "exp": issued + ttl})
    payload = _b64(json.dumps(claims.model_dump(), sort_keys=True, separators=(",", ":")).encode())
    return f"{VERSION}.{payload}.{_b64(_mac(key, payload))}"


def _refuse(detail: str) -> CapRequestRefused:
    return CapRequestRefused(403, FORBIDDEN, detail=detail)


def verify_credential(token: str, key: bytes, *, now: float | None = None) -> CapClaims:
    """The claims of a genuine, unexpired token; CapRequestRefused(403) otherwise (reason logged only).

    The signature is checked before anything in the token is parsed.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise _refuse("the token is too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise _refuse("not a v1 spending-cap token")
    _, payload, signature = parts
    try:
        given = _unb64(signature)
        expected = _mac(key, payload)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _refuse("the token is not base64url") from None
    if not hmac.compare_digest(given, expected):
        raise _refuse("bad signature")
    try:
        claims = CapClaims.model_validate(json.loads(_unb64(payload)))
    except (binascii.Error, ValueError, ValidationError, RecursionError):
        # Signed by a holder of the secret, but not a request we can act on.
        raise CapRequestRefused(400, "the credential's request is not valid") from None
    moment = time.time() if now is None else now
    if claims.exp - claims.iat > MAX_TTL:
        raise _refuse("valid for longer than allowed")
    if claims.iat > moment + SKEW:
        raise _refuse("issued in the future (check the clocks)")
    if claims.exp < moment:
        raise _refuse("expired")
    return claims
