"""The connection's one settings model: the form, the defaults and the parsing agree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from veo_provider import get_provider_info
from veo_provider.exceptions import VeoConfigError, VeoConnectionNotFound
from veo_provider.settings import EXTRAS, VeoSettings, callback_secrets


def test_the_form_shows_every_extra_with_the_default_the_hook_uses() -> None:
    [conn_type] = get_provider_info()["connection-types"]
    form = conn_type["conn-fields"]
    assert set(form) == set(EXTRAS)
    defaults = VeoSettings()
    for name, field in form.items():
        if "default" in field["schema"]:
            assert field["schema"]["default"] == getattr(defaults, name), name


def test_empty_extras_give_the_defaults() -> None:
    conn = SimpleNamespace(host=None, port=None, password="t", conn_id="veo_default")
    assert VeoSettings.from_connection(conn, {}) == VeoSettings()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, []),
        ({"callback_secret": "a"}, ["a"]),
        ({"callback_secret": "a", "callback_secret_previous": "b"}, ["a", "b"]),
        ({"callback_secret_previous": "b"}, ["b"]),  # mid-rotation, the new one not set yet
        ({"callback_secret": 5, "callback_secret_previous": ""}, []),
    ],
)
def test_callback_secrets_current_first(extra: dict, expected: list[str]) -> None:
    assert callback_secrets(extra) == expected


def test_secrets_never_show_in_the_settings_repr() -> None:
    s = VeoSettings(token="tok-123", callback_secret="cb-456", callback_secret_previous="cb-789")
    assert not {"tok-123", "cb-456", "cb-789"} & set(repr(s).replace("'", " ").split())


# --------------------------------------------------------------------- configuration errors


def _conn(host: str | None = None, password: str = "tok-1", conn_id: str = "veo_x") -> SimpleNamespace:
    return SimpleNamespace(host=host, port=None, password=password, conn_id=conn_id)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("daily_job_limt", "daily_job_limit"), ("timout", "timeout"), ("max_retry", "max_retries")],
)
def test_a_misspelt_extra_is_refused_naming_the_extra_it_was_meant_to_be(typo: str, meant: str) -> None:
    with pytest.raises(AirflowFailException) as info:  # final: a retry reads the same connection
        VeoSettings.from_connection(_conn(), {typo: 3})  # type: ignore[arg-type]
    assert f"{typo!r} (did you mean {meant!r}?)" in str(info.value) and "'veo_x'" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_an_unknown_extra_without_a_near_miss_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(VeoConfigError) as info:
        VeoSettings.from_connection(_conn(), {"colour": "blue", "timeout": 5})  # type: ignore[arg-type]
    message = str(info.value)
    assert "'colour':" in message and "did you mean" not in message and "daily_job_limit" in message


def test_every_extra_the_form_writes_and_the_legacy_token_extra_are_accepted() -> None:
    extra = {name: None for name in EXTRAS} | {"token": "tok-2"}
    settings = VeoSettings.from_connection(_conn(password=""), extra)  # type: ignore[arg-type]
    assert settings.token == "tok-2" and settings == VeoSettings()


@pytest.mark.parametrize(
    ("extra", "field"), [({"daily_job_limit": "ten"}, "daily_job_limit"), ({"timeout": "x"}, "timeout")]
)
def test_a_bad_extra_value_is_final(extra: dict, field: str) -> None:
    with pytest.raises(AirflowFailException, match=field):
        VeoSettings.from_connection(_conn(), extra)  # type: ignore[arg-type]


# --------------------------------------------------------------------- the API host and the token


@pytest.mark.parametrize("host", ["http://api.acedata.cloud", "http://10.0.0.5:8080", "http://[2001:db8::1]:8443"])
def test_a_plain_http_api_host_is_refused_unless_it_is_loopback(host: str) -> None:
    with pytest.raises(VeoConfigError, match="must be https://") as info:
        VeoSettings.from_connection(_conn(host), {})  # type: ignore[arg-type]
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8089", "http://localhost:8089", "http://[::1]:8089"])
def test_the_emulator_on_loopback_keeps_plain_http(host: str) -> None:
    assert VeoSettings.from_connection(_conn(host), {}).base_url == host  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("tok-SECRET\nX-Evil: 1", "a control character"),
        ("tok-SECRET\rx", "a control character"),
        ("tok-SECRET\x00x", "a control character"),
        ("tok-SECRET two", "a space"),
        ("tok-SECRET-é", "a non-ASCII character"),
    ],
)
def test_a_token_that_cannot_go_in_a_header_is_refused_without_echoing_it(token: str, what: str) -> None:
    with pytest.raises(VeoConfigError) as info:
        VeoSettings.from_connection(_conn(password=token), {})  # type: ignore[arg-type]
    message = str(info.value)
    assert what in message and "'veo_x'" in message
    assert "SECRET" not in message


def test_whitespace_around_a_pasted_token_is_still_trimmed() -> None:
    assert VeoSettings.from_connection(_conn(password="  tok-1\n"), {}).token == "tok-1"  # type: ignore[arg-type]


# --------------------------------------------------------------------- where the connection is read


def test_a_missing_connection_says_where_connections_are_read_and_how_to_add_one(monkeypatch) -> None:
    from veo_provider.hooks.veo import VeoHook

    monkeypatch.delenv("AIRFLOW_CONN_VEO_NOWHERE", raising=False)
    with pytest.raises(VeoConnectionNotFound) as info:
        _ = VeoHook("veo_nowhere").settings
    message = str(info.value)
    assert "AIRFLOW_CONN_VEO_NOWHERE" in message and "metadata database" in message
    assert "airflow connections add veo_nowhere --conn-type veo" in message


async def test_under_in_process_comms_the_wait_reads_the_connection_the_way_the_task_did(monkeypatch) -> None:
    """`airflow dags test`'s supervisor answers only sync requests: the async lookup used to miss DB connections."""
    from airflow.providers.common.compat.sdk import Connection
    from airflow.sdk.execution_time import task_runner

    from veo_provider.hooks.veo import VeoHook

    class SyncOnlyComms:  # like InProcessSupervisorComms: send() only
        def send(self, msg):
            raise AssertionError("the hook's own lookup answers first")

    stored = Connection(conn_id="veo_db", conn_type="veo", host="http://127.0.0.1:9", password="tok-db")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SyncOnlyComms(), raising=False)
    monkeypatch.setattr(VeoHook, "get_connection", classmethod(lambda cls, conn_id: stored))
    settings = await VeoHook("veo_db").aget_settings()
    assert settings.base_url == "http://127.0.0.1:9" and settings.token == "tok-db"
