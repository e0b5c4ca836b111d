"""Names a package re-exports without importing their modules until first use (PEP 562).

A DAG file that imports the operator must not pay for pydantic models it never builds: the
packages whose modules are heavy (``models``, ``spending``) re-export through this.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, namespace: dict[str, Any], rooms: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``rooms[name]`` (a full module path) on first use and keeps it."""

    def __getattr__(name: str) -> Any:
        module = rooms.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    return __getattr__
