"""The provider as Airflow sees it: provider info, connection form, plugin, cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

import veo_provider


def test_provider_info_matches_airflows_schema():
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = veo_provider.get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-provider-veo"
    [conn] = info["connection-types"]
    assert conn["connection-type"] == "veo" and conn["hook-class-name"] == "veo_provider.hooks.veo.VeoHook"


def test_connection_form_shows_only_what_matters():
    [conn] = veo_provider.get_provider_info()["connection-types"]
    assert set(conn["ui-field-behaviour"]["hidden-fields"]) == {"schema", "port", "login", "extra"}
    assert conn["ui-field-behaviour"]["relabeling"] == {"host": "Base URL", "password": "API token"}
    fields = conn["conn-fields"]
    assert {"timeout", "connect_timeout", "callback_base_url", "callback_secret"} <= set(fields)
    assert fields["callback_secret"]["schema"]["format"] == "password"
    assert all(f["label"] for f in fields.values())


def test_hook_attributes_match_the_provider_info():
    from veo_provider.hooks.veo import VeoHook

    assert (VeoHook.conn_type, VeoHook.default_conn_name, VeoHook.conn_name_attr) == (
        "veo",
        "veo_default",
        "veo_conn_id",
    )


def test_dag_parse_time_imports_stay_cheap():
    """Operators and sensors are imported at every DAG parse: no hook, FastAPI or emulator there.

    (httpx and tenacity are already imported by the Airflow task SDK.)
    """
    code = (  # on top of what the Task SDK imports itself (Airflow 3.0's imports FastAPI)
        "import json, sys; import airflow.sdk; before = set(sys.modules); "
        "import veo_provider.operators.veo, veo_provider.sensors.veo; "
        "print(json.dumps(sorted(m for m in ('fastapi', 'uvicorn', 'veo_provider.testing.emulator', "
        "'veo_provider.hooks.veo', 'veo_provider.callbacks.app', 'veo_provider.callbacks.decision') "
        "if m in sys.modules and m not in before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


@pytest.mark.integration
def test_airflow_cli_lists_the_provider_and_adds_a_veo_connection(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    airflow = str(Path(sys.executable).parent / "airflow")
    providers = subprocess.run([airflow, "providers", "list", "-o", "json"], env=env, capture_output=True, text=True)
    assert "airflow-provider-veo" in providers.stdout
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    add = subprocess.run(
        [airflow, "connections", "add", "veo_default", "--conn-type", "veo", "--conn-password", "tok-123"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert add.returncode == 0, add.stderr[-2000:]
    got = subprocess.run(
        [airflow, "connections", "get", "veo_default", "-o", "json"], env=env, capture_output=True, text=True
    )
    assert '"conn_type": "veo"' in got.stdout


def test_the_providers_page_links_to_our_documentation():
    """Airflow 3.3 links the Providers page to the package's "Documentation" project URL.

    It overwrites the provider info's ``documentation-url`` with that URL (None when missing, and
    the UI then links to an airflow.apache.org page that does not exist): keep both the same.
    """
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    documentation = pyproject["project"]["urls"]["Documentation"]
    assert documentation == veo_provider.get_provider_info()["documentation-url"]
