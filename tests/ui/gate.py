"""Whether a check that needs a tool the machine lacks skips (a developer's machine) or fails (CI).

CI (``CI=true``, set by ``.ci/run`` and by every CI service) installs Chromium, Playwright and
Node, so a missing one there is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["in_ci", "require"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(missing: str | None) -> None:
    """Skip saying what is missing; under CI, fail saying so instead."""
    if missing is None:
        return
    if in_ci():
        pytest.fail(f"{missing}; CI must run this check (.ci/run installs it), so it is not skipped", pytrace=False)
    pytest.skip(missing)
