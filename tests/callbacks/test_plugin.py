"""The plugin mounts the receiver at /veo, and importing it stays cheap for non-api-server processes."""

from __future__ import annotations

import subprocess
import sys

from fastapi import FastAPI

from veo_provider.callbacks.plugin import VeoCallbackPlugin


def test_plugin_mounts_the_receiver_at_veo() -> None:
    from airflow._shared.plugins_manager import is_valid_plugin

    assert is_valid_plugin(VeoCallbackPlugin)
    assert VeoCallbackPlugin.name == "veo_callbacks"
    entry, ui = VeoCallbackPlugin.fastapi_apps
    assert ui["url_prefix"] == "/veo-ui" and isinstance(ui["app"], FastAPI)
    assert [a["destination"] for a in VeoCallbackPlugin.react_apps] == ["dag_run", "task_instance"]
    assert entry["url_prefix"] == "/veo" and entry["name"] == "Veo callback receiver"
    app = entry["app"]
    assert isinstance(app, FastAPI)
    assert any(getattr(r, "path", None) == "/callback" and "POST" in getattr(r, "methods", ()) for r in app.routes)
    assert VeoCallbackPlugin.fastapi_apps is VeoCallbackPlugin.fastapi_apps  # built once
    assert VeoCallbackPlugin().fastapi_apps[0]["app"] is app


def test_importing_the_plugin_does_not_import_fastapi() -> None:
    code = "import sys, veo_provider.callbacks.plugin; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
