"""Test helpers for users of the provider: an offline Veo API emulator and its pytest fixtures.

The emulator pulls in FastAPI and uvicorn, so it is only imported when first used: the
pytest plugin is loaded by every pytest run and must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from veo_provider.testing.emulator import (
        CallbackSink,
        EmulatorConfig,
        EmulatorState,
        Faults,
        VeoEmulator,
        create_app,
    )

__all__ = ["CallbackSink", "EmulatorConfig", "EmulatorState", "Faults", "VeoEmulator", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from veo_provider.testing import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
