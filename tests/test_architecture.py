"""docs/architecture.md names every module of veo_provider/: a new module cannot be left out of it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "veo_provider"
DOC = ROOT / "docs" / "architecture.md"


def modules() -> list[str]:
    """Every module's path relative to veo_provider/, except empty package ``__init__.py`` files."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        if path.name == "__init__.py" and not path.read_text().strip():
            continue
        found.append(path.relative_to(PACKAGE).as_posix())
    return found


def documented() -> set[str]:
    return set(re.findall(r"`([\w/]+\.py)`", DOC.read_text()))


def test_every_module_of_the_package_has_its_line_in_the_architecture_page():
    missing = [m for m in modules() if m not in documented()]
    assert not missing, f"add one line for each to docs/architecture.md: {missing}"


def test_the_check_sees_the_package():
    assert {"plugin.py", "callbacks/decision.py", "ledger/database.py"} <= set(modules())
