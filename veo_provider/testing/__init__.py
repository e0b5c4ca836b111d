"""Test helpers for users of the provider: an offline Veo API emulator and its pytest fixtures.

The emulator pulls in FastAPI (and uvicorn when served), so it is only imported when first used.
The pytest fixtures are opt-in: ``pytest -p veo_provider.testing.pytest_plugin``, or
``pytest_plugins = ["veo_provider.testing.pytest_plugin"]`` in a ``conftest.py``. Beside them:
``payloads`` (the API's answers, for respx-mocked tests), ``fakes`` (an in-memory task state
store and task instance) and ``cluster`` (a real Airflow on PostgreSQL for end-to-end tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from veo_provider.testing.emulator import (
        CallbackRecorder,
        EmulatorConfig,
        EmulatorState,
        Faults,
        VeoEmulator,
        create_app,
    )

__all__ = ["CallbackRecorder", "EmulatorConfig", "EmulatorState", "Faults", "VeoEmulator", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from veo_provider.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
