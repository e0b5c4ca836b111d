"""The spending-cap credential: only the whole request, signed with the deployment's key and unexpired, passes."""

from __future__ import annotations

import base64
import json

import pytest

from veo_provider.exceptions import SpendingCapMisconfigured
from veo_provider.spending.credential import (
    MAX_TTL,
    TTL,
    deployment_key,
    issue_credential,
    verify_credential,
)
from veo_provider.spending.rules import CapRequest, CapRequestRefused

KEY = b"k" * 32
NOW = 1_790_000_000.0
REQUEST = CapRequest(
    action="reserve", dag_id="d", run_id="r", task_id="t", map_index=2, key="k1", ti_id="0190-aaaa-try-1"
)


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _reissue(token: str, **changes) -> str:
    """The same token with changed claims and the old signature (what a forger can make)."""
    version, _, signature = token.split(".")
    body = json.dumps({**_claims(token), **changes}, sort_keys=True, separators=(",", ":")).encode()
    return f"{version}.{base64.urlsafe_b64encode(body).rstrip(b'=').decode()}.{signature}"


def test_a_genuine_credential_gives_back_exactly_the_signed_request():
    claims = verify_credential(issue_credential(REQUEST, KEY, now=NOW), KEY, now=NOW + 5)
    assert claims.request() == REQUEST
    assert claims.exp - claims.iat == TTL
    assert str(claims.issued_day()) == "2026-09-21"


@pytest.mark.parametrize(
    "change",
    [
        {"task_id": "other"},
        {"dag_id": "other"},
        {"run_id": "scheduled__other"},
        {"map_index": 3},
        {"key": "k2"},
        {"action": "release"},
        {"ti_id": "0190-aaaa-try-2"},
        {"exp": NOW + 10 * 86400},
        {"iat": NOW + 86400},
    ],
)
def test_any_changed_field_breaks_the_signature(change):
    forged = _reissue(issue_credential(REQUEST, KEY, now=NOW), **change)
    with pytest.raises(CapRequestRefused) as info:
        verify_credential(forged, KEY, now=NOW)
    assert (info.value.status_code, info.value.detail) == (403, "bad signature")


def test_a_credential_signed_with_another_key_is_refused():
    with pytest.raises(CapRequestRefused, match="not valid"):
        verify_credential(issue_credential(REQUEST, b"other" * 8, now=NOW), KEY, now=NOW)


def test_a_replay_after_expiry_or_on_another_day_is_refused():
    token = issue_credential(REQUEST, KEY, now=NOW)
    verify_credential(token, KEY, now=NOW + TTL)  # still valid at its last second
    for later in (NOW + TTL + 1, NOW + 86400):
        with pytest.raises(CapRequestRefused) as info:
            verify_credential(token, KEY, now=later)
        assert info.value.detail == "expired"


def test_a_credential_from_the_future_or_valid_too_long_is_refused():
    with pytest.raises(CapRequestRefused, match="not valid") as info:
        verify_credential(issue_credential(REQUEST, KEY, now=NOW + 3600), KEY, now=NOW)
    assert "future" in str(info.value.detail)
    with pytest.raises(CapRequestRefused) as info:
        verify_credential(issue_credential(REQUEST, KEY, now=NOW, ttl=MAX_TTL + 1), KEY, now=NOW)
    assert "longer" in str(info.value.detail)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v1..", "v2.e30.AAAA", "v1.e30.!!!!", "v1.e30.AAAA.extra", "v1.é.AAAA", "x" * 5000],
)
def test_a_malformed_token_is_a_403_never_an_error(token):
    with pytest.raises(CapRequestRefused) as info:
        verify_credential(token, KEY, now=NOW)
    assert info.value.status_code == 403


def test_a_signed_request_out_of_bounds_is_a_400_not_a_server_error():
    # Only a holder of the key can make one: it still must not reach the database.
    import hashlib
    import hmac

    body = {**REQUEST.model_dump(), "map_index": 2**70, "iat": int(NOW), "exp": int(NOW) + 60}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    signature = hmac.new(KEY, f"v1.{payload}".encode(), hashlib.sha256).digest()
    token = f"v1.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(CapRequestRefused) as info:
        verify_credential(token, KEY, now=NOW)
    assert info.value.status_code == 400


def test_a_credential_needs_the_task_instance_id():
    with pytest.raises(ValueError, match="ti_id"):
        issue_credential(REQUEST.model_copy(update={"ti_id": None}), KEY, now=NOW)


# ------------------------------------------------------------------------------ the key


def test_the_key_comes_from_the_explicit_secret_else_airflows_jwt_secret(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "jwt-secret-0123456789abcdef")
    monkeypatch.delenv("AIRFLOW__VEO__SPENDING_CAP_SECRET", raising=False)
    from_jwt = deployment_key()
    monkeypatch.setenv("AIRFLOW__VEO__SPENDING_CAP_SECRET", "cap-secret-0123456789abcdef")
    explicit = deployment_key()
    assert from_jwt != explicit
    assert b"jwt-secret" not in from_jwt and len(explicit) == 32, "a derived key, not the secret itself"
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "changed-jwt-secret-0123456789")
    assert deployment_key() == explicit


@pytest.mark.parametrize("jwt_secret", ["", "tiny-secret", "{JWT_SECRET_KEY}"])
def test_without_a_usable_secret_the_worker_is_told_what_to_set(monkeypatch, jwt_secret):
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", jwt_secret)
    monkeypatch.delenv("AIRFLOW__VEO__SPENDING_CAP_SECRET", raising=False)
    with pytest.raises(SpendingCapMisconfigured, match="AIRFLOW__VEO__SPENDING_CAP_SECRET") as info:
        deployment_key()
    assert "Nothing was sent" in str(info.value)
    if jwt_secret:
        assert jwt_secret not in str(info.value), "a secret is never echoed"
