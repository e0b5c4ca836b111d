"""The connection's one settings model: the form, the defaults and the parsing agree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from veo_provider import get_provider_info
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
