"""Write the era constraints of .ci/constraints/: each supported Airflow with the dependencies of its release day.

Airflow's published constraints files cannot be fetched on our CI machines, and a plain
``pip install apache-airflow==3.2.2`` today resolves fastapi/cadwyn releases that break that
Airflow's Execution API. So CI installs every Airflow line under constraints we keep, made the way
Airflow makes its own: resolve ``apache-airflow==X`` plus our requirements (the runtime
``dependencies`` and the ``test`` extra of pyproject.toml) with ``uv pip compile --exclude-newer
<release upload date + ERA_SLACK_DAYS>``. Same inputs, same file: the dates are fixed here.

Providers we need newer than the era (PROVIDERS_WE_UPGRADE, e.g. common-compat, whose
``get_async_connection`` our triggers need) are resolved as of PROVIDERS_AS_OF instead, the way a
user upgrades a provider next to an installed Airflow: the newest release then that installs next to
that Airflow without changing it. Everything else stays as that Airflow was released.

    python tools/era_constraints.py            # every version in ERAS
    python tools/era_constraints.py 3.1.8      # one
    python tools/era_constraints.py --check    # exit 1 if a kept file differs from a fresh resolution

It needs Python 3.11+ (tomllib) and uv (`pip install uv`, in the test extra).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".ci" / "constraints"

#: The newest patch of each supported minor, with the day PyPI received its files (PyPI JSON API,
#: earliest ``upload_time`` of the release).
ERAS = {
    "3.0.6": dt.date(2025, 8, 29),
    "3.1.8": dt.date(2026, 3, 11),
    "3.2.2": dt.date(2026, 5, 29),
    "3.3.2": dt.date(2026, 9, 17),
}
#: Airflow's own constraints are cut a few days after a release; this matches them closely enough.
ERA_SLACK_DAYS = 4
#: Providers our package needs newer than some eras have (see the module docstring).
PROVIDERS_WE_UPGRADE = ("apache-airflow-providers-common-compat",)
#: The day those providers are taken from (move it forward deliberately, then regenerate).
PROVIDERS_AS_OF = dt.date(2026, 12, 1)
#: The CI's Python; Airflow's own constraints are per Python version too.
PYTHON = "3.11"
#: Extras whose requirements go into the files (the matrix installs ``wheel[test]``).
EXTRAS = ("test",)


def our_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The runtime dependencies and EXTRAS of pyproject.toml, without any apache-airflow range."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return [r for r in reqs if re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() != "apache-airflow"]


def target(version: str, python: str = PYTHON) -> Path:
    return OUT / (f"airflow-{version}.txt" if python == PYTHON else f"airflow-{version}-py{python}.txt")


def header(version: str, python: str) -> str:
    cutoff = ERAS[version] + dt.timedelta(days=ERA_SLACK_DAYS)
    upgraded = ", ".join(PROVIDERS_WE_UPGRADE)
    return (
        f"# Era constraints for apache-airflow=={version} on Python {python}, kept by airflow-provider-veo.\n"
        f"# Made by `python tools/era_constraints.py {version}{'' if python == PYTHON else ' --python ' + python}`"
        " (see that script): uv pip compile of\n"
        f"# apache-airflow=={version} + our dependencies + the [{','.join(EXTRAS)}] extra of pyproject.toml, with\n"
        f"# --exclude-newer {cutoff} (Airflow {version} reached PyPI on {ERAS[version]}, + {ERA_SLACK_DAYS} days)\n"
        f"# except {upgraded}, taken as of {PROVIDERS_AS_OF}: the provider needs a newer release than\n"
        "# that era; it is the newest one then that installs next to this Airflow without changing it.\n"
        "# Other providers stay as this Airflow was released: to upgrade one, see docs/installation.md.\n"
    )


def compile_era(version: str, python: str, uv: str) -> str:
    """The constraints text for one Airflow version (header + uv's resolution)."""
    cutoff = ERAS[version] + dt.timedelta(days=ERA_SLACK_DAYS)
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / f"req-{version}.in"
        req.write_text("\n".join([f"apache-airflow=={version}", *our_requirements()]) + "\n", encoding="utf-8")
        cmd = [uv, "pip", "compile", "--no-config", "--quiet", "--no-annotate", "--no-header"]
        cmd += ["--python-version", python, "--exclude-newer", f"{cutoff}T00:00:00Z"]
        for name in PROVIDERS_WE_UPGRADE:
            cmd += ["--exclude-newer-package", f"{name}={PROVIDERS_AS_OF}T00:00:00Z"]
        proc = subprocess.run([*cmd, str(req)], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"uv could not resolve Airflow {version} with our requirements:\n{proc.stderr}")
    return header(version, python) + proc.stdout


def find_uv() -> str:
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        raise SystemExit("uv is not installed: pip install uv (it is in the [test] extra)")
    return uv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="default: all of " + ", ".join(ERAS))
    parser.add_argument("--python", default=PYTHON, help=f"the Python to resolve for (default {PYTHON})")
    parser.add_argument("--check", action="store_true", help="compare with the kept files instead of writing")
    args = parser.parse_args(argv)
    if unknown := [v for v in args.versions if v not in ERAS]:
        parser.error(f"no era for Airflow {', '.join(unknown)}: add it to ERAS with its PyPI upload date")
    uv, stale = find_uv(), []
    for version in args.versions or list(ERAS):
        text, path = compile_era(version, args.python, uv), target(version, args.python)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    if stale:
        print("out of date (run python tools/era_constraints.py): " + ", ".join(stale), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
