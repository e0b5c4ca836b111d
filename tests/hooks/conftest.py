"""Fixtures of the hook tests: a hook with fast backoff (the mocked API is tests/conftest.py's ``api``)."""

from __future__ import annotations

import pytest

from veo_provider.hooks.veo import VeoHook


@pytest.fixture
def hook(veo_conn) -> VeoHook:
    return VeoHook(retry_wait_initial=0.01, retry_wait_max=0.05)
