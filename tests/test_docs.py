"""The documentation site: it builds in strict mode, and it cannot drift from the code.

`make docs` builds the same site; this is how CI checks it (a broken link, a missing anchor or
reference, or any other MkDocs warning fails the build).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Every error code of the Veo API's error table (shared/veo-api/NOTES.md).
API_ERROR_CODES = (
    "bad_request",
    "no_token",
    "api_not_implemented",
    "token_mismatched",
    "invalid_token",
    "token_expired",
    "used_up",
    "disabled",
    "forbidden",
    "no_api",
    "too_many_requests",
    "api_error",
    "timeout",
)

#: Parameters whose docstring entry is known to be missing (reported; remove once documented).
KNOWN_UNDOCUMENTED = {("VeoSensor", "retry_delay")}


def _docs_toolchain_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[docs]')"
    return None


@pytest.mark.integration  # a MkDocs subprocess of about a minute: `make test`, not `make unit`
def test_the_site_builds_in_strict_mode_without_warnings(tmp_path):
    if reason := _docs_toolchain_missing():
        pytest.skip(reason)
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner, not a build warning
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    connection = (site / "connection" / "index.html").read_text()
    from veo_provider.settings import EXTRAS

    missing = [name for name in EXTRAS if f"<code>{name}</code>" not in connection]
    assert not missing, f"extras missing from the built connection page: {missing}"
    for page in ("reference/operator", "reference/sensor", "reference/hook"):
        html = (site / page / "index.html").read_text()
        assert "Parameters:" in html, f"{page}: mkdocstrings rendered no parameters"


def _hook():
    spec = importlib.util.spec_from_file_location("veo_docs_hook", DOCS / "_hooks" / "veo_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_connection_page_documents_every_extra():
    from veo_provider.settings import EXTRAS

    page = (DOCS / "connection.md").read_text()
    assert "<!-- veo:extras -->" in page, "the connection page must keep the generated extras table"
    table = _hook().extras_table()
    for name in EXTRAS:
        assert f"| `{name}` |" in table, name


def test_the_operator_page_documents_every_xcom_key():
    from veo_provider.models.records import XCOM_KEYS

    assert "<!-- veo:xcom -->" in (DOCS / "reference" / "operator.md").read_text()
    table = _hook().xcom_table()  # raises when a key has no meaning written for it
    for key in XCOM_KEYS:
        assert f"| `{key}` |" in table, key


def test_troubleshooting_covers_every_api_error_code():
    import veo_provider.exceptions as exc

    page = (DOCS / "troubleshooting.md").read_text()
    headings = "\n".join(line for line in page.splitlines() if line.startswith("### "))
    mapped = set(getattr(exc, "_BY_CODE", {})) | set(getattr(exc, "_STATUS_OF_CODE", {}))
    missing = [code for code in sorted(set(API_ERROR_CODES) | mapped) if f"`{code}`" not in headings]
    assert not missing, f"troubleshooting.md has no section for the API error codes {missing}"


def test_troubleshooting_covers_every_exception():
    import veo_provider.exceptions as exc

    page = (DOCS / "troubleshooting.md").read_text()
    classes = [name for name in exc.__all__ if inspect.isclass(getattr(exc, name))]
    missing = [name for name in classes if not re.search(rf"^### `{name}`", page, re.M)]
    assert not missing, f"troubleshooting.md has no section for {missing}"
    reference = (DOCS / "reference" / "exceptions.md").read_text()
    missing = [name for name in classes if f"- {name}\n" not in reference]
    assert not missing, f"reference/exceptions.md does not list {missing}"


def _documented(cls: type) -> set[str]:
    return set(re.findall(r":param (\w+):", inspect.getdoc(cls) or ""))


def test_every_public_parameter_has_a_docstring_entry():
    from veo_provider.hooks.veo import VeoHook
    from veo_provider.operators.veo import VeoOperator
    from veo_provider.sensors.veo import VeoSensor
    from veo_provider.triggers.veo import VeoTrigger

    missing = set()
    for cls in (VeoOperator, VeoSensor, VeoHook, VeoTrigger):
        for name, param in inspect.signature(cls.__init__).parameters.items():
            variadic = param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
            if name != "self" and not variadic and name not in _documented(cls):
                missing.add((cls.__name__, name))
    assert missing <= KNOWN_UNDOCUMENTED, (
        f"parameters without a ':param x:' docstring entry: {missing - KNOWN_UNDOCUMENTED}"
    )


def _dag_examples() -> list[tuple[str, str]]:
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S):
            if "@dag(" in block:
                blocks.append((str(page.relative_to(DOCS)), block))
    return blocks


@pytest.mark.parametrize(("page", "code"), _dag_examples(), ids=lambda v: v if v.endswith(".md") else "")
def test_dag_examples_in_the_docs_define_a_dag(page, code):
    from airflow.providers.common.compat.sdk import DAG

    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, page, "exec"), namespace)
    dags = [v for v in namespace.values() if isinstance(v, DAG)] or _dags_created(code, namespace)
    assert dags, f"{page}: the example defines no DAG"


def _dags_created(code: str, namespace: dict[str, object]) -> list[object]:
    """``@dag`` functions return the DAG when called: call each one the example defined."""
    from airflow.providers.common.compat.sdk import DAG

    made = []
    for name in re.findall(r"^def (\w+)\(", code, re.M):
        value = namespace[name]
        if callable(value):
            result = value()
            if isinstance(result, DAG):
                made.append(result)
    return made
