"""The version matrix's inputs: the kept era constraints fit our requirements, and no example DAG is left out."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / ".ci" / "constraints"
MATRIX = ROOT / ".ci" / "test-airflow.sh"

pytest.importorskip("tomllib", reason="tools/era_constraints.py reads pyproject.toml with tomllib (Python 3.11+)")
_spec = importlib.util.spec_from_file_location("era_constraints", ROOT / "tools" / "era_constraints.py")
assert _spec and _spec.loader
era = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(era)

#: The interpreter the files are resolved for (markers such as ``python_version < '3.14'``).
MARKER_ENV = {"python_version": era.PYTHON, "python_full_version": era.PYTHON + ".0", "sys_platform": "linux"}


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", " ")):
            name, _, version = line.partition("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return found


def test_our_requirements_drop_the_airflow_range_and_keep_the_providers(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["apache-airflow>=3.3.0", "apache-airflow-providers-common-compat>=1.20.0",'
        ' "httpx>=0.27"]\n[project.optional-dependencies]\ntest = ["apache-airflow[celery] ; python_version>\'3\'",'
        ' "pytest>=8"]\n'
    )
    assert era.our_requirements(pyproject) == [
        "apache-airflow-providers-common-compat>=1.20.0",
        "httpx>=0.27",
        "pytest>=8",
    ]


@pytest.mark.parametrize("version", list(era.ERAS))
def test_each_era_file_pins_its_airflow_and_says_how_it_was_made(version):
    path = era.target(version)
    assert path.exists(), f"missing {path.name}: run python tools/era_constraints.py {version}"
    text = path.read_text(encoding="utf-8")
    cutoff = era.ERAS[version] + era.dt.timedelta(days=era.ERA_SLACK_DAYS)
    assert f"python tools/era_constraints.py {version}" in text and f"--exclude-newer {cutoff}" in text
    assert pins(path)["apache-airflow"] == version


@pytest.mark.parametrize("version", list(era.ERAS))
def test_each_era_file_satisfies_every_requirement_of_ours_next_to_that_airflow(version):
    pinned = pins(era.target(version))
    unmet = []
    for line in era.our_requirements():
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(MARKER_ENV):
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name not in pinned or not req.specifier.contains(pinned[name], prereleases=True):
            unmet.append(f"{line} (pinned: {pinned.get(name)})")
    assert not unmet, f"{version}: regenerate with python tools/era_constraints.py {version}: {unmet}"


def test_the_matrix_covers_exactly_the_eras_kept():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [versions] = re.findall(r"^AIRFLOW_VERSIONS \?= (.+)$", makefile, flags=re.M)
    assert versions.split() == list(era.ERAS)
    assert sorted(p.name for p in CONSTRAINTS.glob("airflow-*.txt")) == sorted(era.target(v).name for v in era.ERAS)


def test_every_example_dag_is_run_by_the_matrix_dags_step():
    """`make test-versions` runs `airflow dags test` of each example through these integration tests."""
    [step] = re.findall(r"^dags\(\) \{\n(.*?)^\}", MATRIX.read_text(encoding="utf-8"), flags=re.M | re.S)
    files = {ROOT / f.split("::")[0] for f in re.findall(r"(tests/integration/[\w/]+\.py(?:::\w+)?)", step)}
    tests = "\n".join(f.read_text(encoding="utf-8") for f in files)
    examples = sorted(p.stem for p in (ROOT / "dags_examples").glob("*.py"))
    assert examples, "no example DAGs found"
    missing = [d for d in examples if f'dags_test("{d}"' not in tests and f'"dags", "test", "{d}"' not in tests]
    assert not missing, f"example DAGs no matrix test runs: {missing}"
