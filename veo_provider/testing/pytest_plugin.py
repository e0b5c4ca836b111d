"""pytest fixtures for the offline Veo API emulator (opt-in).

Enable them with ``pytest -p veo_provider.testing.pytest_plugin`` or, in a ``conftest.py``,
``pytest_plugins = ["veo_provider.testing.pytest_plugin"]``. The module imports nothing heavy:
the emulator (FastAPI, uvicorn) is imported inside the fixtures.

* ``veo_emulator``: a running ``VeoEmulator`` (generation time 0.2 s) for one test.
* ``veo_emulator_config``: override it to change the ``EmulatorConfig``; or mark a test with
  ``@pytest.mark.veo_emulator(generation_seconds=0, ...)`` (keyword arguments replace config fields).
* ``veo_connection_env``: points ``AIRFLOW_CONN_VEO_DEFAULT`` at the emulator.
* ``veo_callback_recorder``: a ``CallbackRecorder`` that records the callbacks POSTed to it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from veo_provider.testing.emulator import CallbackRecorder, EmulatorConfig, VeoEmulator

#: Generation time of the fixture's emulator: long enough to see pending/running, short for CI.
DEFAULT_GENERATION_SECONDS = 0.2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "veo_emulator(**fields): EmulatorConfig fields for the veo_emulator fixture "
        "(e.g. generation_seconds=0, faults={...})",
    )


@pytest.fixture
def veo_emulator_config() -> EmulatorConfig:
    """The config of ``veo_emulator``; override this fixture to change it for a module."""
    from veo_provider.testing.emulator import EmulatorConfig

    return EmulatorConfig(generation_seconds=DEFAULT_GENERATION_SECONDS)


@pytest.fixture
def veo_emulator(request: pytest.FixtureRequest, veo_emulator_config: EmulatorConfig) -> Iterator[VeoEmulator]:
    """A Veo API emulator running in this process, stopped after the test."""
    from veo_provider.testing.emulator import VeoEmulator

    config = veo_emulator_config
    marker = request.node.get_closest_marker("veo_emulator")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.veo_emulator takes keyword arguments only")
        config = dataclasses.replace(config, **marker.kwargs)
    with VeoEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def veo_connection_env(veo_emulator: VeoEmulator, monkeypatch: pytest.MonkeyPatch) -> VeoEmulator:
    """Make ``veo_default`` (what operators use unless told otherwise) talk to the emulator."""
    conn = {"conn_type": "veo", "host": veo_emulator.url, "password": veo_emulator.token}
    monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps(conn))
    return veo_emulator


@pytest.fixture
def veo_callback_recorder() -> Iterator[CallbackRecorder]:
    """An HTTP server that records callbacks (use ``.url`` in ``callback_url``)."""
    from veo_provider.testing.emulator import CallbackRecorder

    with CallbackRecorder() as recorder:
        yield recorder
