"""The UI check (tools/ui_check.py) as a test: a real browser on Airflow's pages, about 3 minutes.

It starts a cluster of its own (not the session's), so it skips unless PostgreSQL, Playwright
(``pip install playwright``) and Chromium are all there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from veo_provider.testing.cluster import postgres_unavailable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _ui_check():
    spec = importlib.util.spec_from_file_location("ui_check", ROOT / "tools" / "ui_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_provider_in_airflows_ui(tmp_path):
    if reason := postgres_unavailable():
        pytest.skip(f"the UI check needs PostgreSQL: {reason}")
    ui_check = _ui_check()
    if reason := ui_check.browser_unavailable():
        pytest.skip(f"the UI check needs a browser: {reason}")
    assert ui_check.run(tmp_path / "screenshots") == 0, f"UI checks failed; screenshots in {tmp_path}"
