"""A check whose tool is missing skips on a developer's machine and fails in CI."""

from __future__ import annotations

import pytest

from tests.ui.gate import require


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_a_missing_tool_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="no Chromium at /x; CI must run this check"):
        require("no Chromium at /x")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_a_missing_tool_skips_outside_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="Playwright is not installed"):
        require("Playwright is not installed")


def test_nothing_missing_neither_skips_nor_fails(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require(None) is None
