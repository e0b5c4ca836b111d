"""Fixtures of the hook tests: a hook with fast backoff, and the mocked API."""

from __future__ import annotations

import pytest
import respx

from tests.conftest import BASE_URL
from veo_provider.hooks.veo import VeoHook


@pytest.fixture
def hook(veo_conn) -> VeoHook:
    return VeoHook(retry_wait_initial=0.01, retry_wait_max=0.05)


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock
