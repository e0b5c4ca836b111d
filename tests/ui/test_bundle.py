"""The committed bundle is what `npm ci && npm run build` makes from the committed source and lockfile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ui.gate import require
from veo_provider.ui.app import STATIC_DIR
from veo_provider.ui.views import BUNDLE_FILE

WWW = Path(__file__).resolve().parents[2] / "veo_provider" / "ui" / "www"


@pytest.mark.integration  # npm ci fetches the lockfile's packages (about a minute)
def test_the_committed_bundle_is_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    require(
        "node/npm are not installed: the bundle cannot be rebuilt here"
        if npm is None or not shutil.which("node")
        else None
    )
    assert npm is not None
    www = tmp_path / "www"
    shutil.copytree(WWW, www, ignore=shutil.ignore_patterns("node_modules"))
    for args in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        proc = subprocess.run([npm, *args], cwd=www, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rebuilt = tmp_path / "static" / BUNDLE_FILE
    assert sorted(p.name for p in rebuilt.parent.iterdir()) == sorted(p.name for p in STATIC_DIR.iterdir())
    assert rebuilt.read_bytes() == (STATIC_DIR / BUNDLE_FILE).read_bytes(), (
        "veo_provider/ui/static differs from a fresh build: run `make ui-bundle` (or npm ci && npm run build "
        "in veo_provider/ui/www) and commit the result"
    )


def test_the_bundle_leaves_react_and_chakra_to_the_host() -> None:
    text = (STATIC_DIR / BUNDLE_FILE).read_text()
    header = text.split("})(this")[0]  # the UMD wrapper: what the bundle takes from outside
    assert ".AirflowPlugin=" in header
    for module in ("react", "react/jsx-runtime", "@chakra-ui/react"):
        assert f'require("{module}")' in header, module
    assert "react.transitional.element" not in text, "React itself must not be bundled"
    assert len(text) < 50_000
