"""Signed callback URLs: every field is bound, only configured secrets verify, URLs expire."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from veo_provider.callbacks import signing
from veo_provider.callbacks.signing import (
    CALLBACK_PARAMS,
    SIGNATURE_PARAM,
    CallbackRejected,
    CallbackTarget,
    sign_callback_url,
    verify_callback,
)
from veo_provider.compat import AIRFLOW_V_3_3_PLUS

SECRET = "cb-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OLD_SECRET = "cb-old-secret-9876543210-zyxwvutsrqponmlkjihgfedcba"
NOW = 1_800_000_000


def target(**kw: object) -> CallbackTarget:
    fields: dict[str, object] = {
        "dag_id": "videos",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "task_id": "make_video",
        "map_index": -1,
        "submission_key": "0f" * 16,
        "conn_id": "veo_default",
        "expires_at": NOW + 3600,
    }
    return CallbackTarget(**{**fields, **kw})  # type: ignore[arg-type]


def params_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def signed(t: CallbackTarget | None = None, secret: str = SECRET) -> dict[str, str]:
    return params_of(sign_callback_url("https://airflow.example.com/veo", t or target(), secret))


def test_signed_url_round_trips_to_the_same_target() -> None:
    t = target(run_id="scheduled__2026-01-01 a&b=c/ü", map_index=7)
    assert verify_callback(signed(t), [SECRET], now=NOW) == t


def test_url_format_is_base_slash_callback_with_every_field() -> None:
    url = sign_callback_url("https://airflow.example.com/veo/", target(), SECRET)
    assert url.startswith("https://airflow.example.com/veo/callback?")
    params = params_of(url)
    assert list(params) == list(CALLBACK_PARAMS)
    assert params["dag_id"] == "videos" and params["map_index"] == "-1" and params["key"] == "0f" * 16
    assert params["exp"] == str(NOW + 3600)
    assert len(params[SIGNATURE_PARAM]) == 43  # HMAC-SHA256, base64url without padding


def test_short_secret_is_refused_naming_the_field_and_the_fix() -> None:
    short = "too-short-secret"
    with pytest.raises(ValueError, match="callback_secret") as exc:
        sign_callback_url("https://a.example/veo", target(), short)
    assert "at least 32" in str(exc.value)
    assert short not in str(exc.value)


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="callback_base_url"):
        sign_callback_url("airflow.example.com/veo", target(), SECRET)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("dag_id", "other_dag"),
        ("run_id", "manual__other"),
        ("task_id", "other_task"),
        ("map_index", "0"),
        ("key", "1f" * 16),
        ("conn_id", "veo_other"),
        ("exp", str(NOW + 7200)),
    ],
)
def test_any_tampered_field_is_a_bad_signature(param: str, value: str) -> None:
    params = {**signed(), param: value}
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(params, [SECRET], now=NOW)
    assert exc.value.status_code == 403


def test_characters_cannot_move_between_fields() -> None:
    """``dag_id="ab", run_id="c"`` and ``dag_id="a", run_id="bc"`` sign differently."""
    params = {**signed(target(dag_id="ab", run_id="c")), "dag_id": "a", "run_id": "bc"}
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(params, [SECRET], now=NOW)
    assert exc.value.status_code == 403


def test_signature_binds_the_version_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "SIGNATURE_VERSION", "veo-callback-v0")
    params = signed()
    monkeypatch.undo()
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(params, [SECRET], now=NOW)
    assert exc.value.status_code == 403


def test_wrong_secret_is_403() -> None:
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(signed(secret=OLD_SECRET), [SECRET], now=NOW)
    assert exc.value.status_code == 403


def test_previous_secret_still_verifies_during_rotation() -> None:
    assert verify_callback(signed(secret=OLD_SECRET), [SECRET, OLD_SECRET], now=NOW) == target()


def test_no_usable_secret_is_403() -> None:
    for secrets in ([], [""], ["short"]):
        with pytest.raises(CallbackRejected) as exc:
            verify_callback(signed(), secrets, now=NOW)
        assert exc.value.status_code == 403


def test_expired_url_is_410_only_when_authentic() -> None:
    t = target(expires_at=NOW)
    assert verify_callback(signed(t), [SECRET], now=NOW) == t  # valid up to and including exp
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(signed(t), [SECRET], now=NOW + 1)
    assert exc.value.status_code == 410
    with pytest.raises(CallbackRejected) as exc:
        verify_callback({**signed(t), "task_id": "x"}, [SECRET], now=NOW + 1)
    assert exc.value.status_code == 403


def test_expiry_uses_the_clock_by_default() -> None:
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(signed(target(expires_at=int(time.time()) - 5)), [SECRET])
    assert exc.value.status_code == 410


def test_missing_signature_is_403() -> None:
    params = signed()
    del params[SIGNATURE_PARAM]
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(params, [SECRET], now=NOW)
    assert exc.value.status_code == 403


@pytest.mark.parametrize("param", [p for p in CALLBACK_PARAMS if p != SIGNATURE_PARAM])
def test_missing_field_is_400(param: str) -> None:
    params = signed()
    del params[param]
    with pytest.raises(CallbackRejected) as exc:
        verify_callback(params, [SECRET], now=NOW)
    assert exc.value.status_code == 400
    assert param in exc.value.reason


@pytest.mark.parametrize("value", ["x", "1.0", "+1", " 1", "01"])
def test_non_integer_map_index_is_400(value: str) -> None:
    with pytest.raises(CallbackRejected) as exc:
        verify_callback({**signed(target(map_index=1)), "map_index": value}, [SECRET], now=NOW)
    assert exc.value.status_code == 400


def test_reasons_never_contain_the_signature_or_the_secret() -> None:
    good = signed()
    cases = [
        {**good, "task_id": "x"},
        {**good, SIGNATURE_PARAM: good[SIGNATURE_PARAM][::-1]},
        {k: v for k, v in good.items() if k != "dag_id"},
        signed(target(expires_at=NOW - 10)),
    ]
    for params in cases:
        with pytest.raises(CallbackRejected) as exc:
            verify_callback(params, [SECRET], now=NOW)
        text = f"{exc.value} {exc.value.reason}"
        assert params[SIGNATURE_PARAM] not in text and good[SIGNATURE_PARAM] not in text and SECRET not in text


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow redacts query values in its access log from 3.3")
def test_airflow_access_log_redacts_the_signature() -> None:
    """The api-server's access log writes query strings; ours must come out without the signature."""
    from airflow.api_fastapi.common.http_access_log import _redact_query_string

    query = urlsplit(sign_callback_url("https://a.example/veo", target(), SECRET)).query
    redacted = _redact_query_string(query)
    assert signed()[SIGNATURE_PARAM] not in redacted
    assert "dag_id=videos" in redacted


def test_urlencoded_query_is_what_verify_reads() -> None:
    """Round trip through a real query string (as the receiver sees it), not just a dict."""
    url = sign_callback_url("https://a.example/veo", target(run_id="r+1 2"), SECRET)
    again = dict(parse_qsl(urlencode(params_of(url))))
    assert verify_callback(again, [SECRET], now=NOW).run_id == "r+1 2"
