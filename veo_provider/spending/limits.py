"""What a cap may be set to, checked when a DAG file is parsed (stdlib only: parsing builds no models)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_limit"]


def check_limit(name: str, value: Any) -> None:
    """A cap is a whole number of jobs >= 1, or None (no cap); refused at DAG-parse time."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of jobs, at least 1 (got {value!r}); use None for no cap")
