"""The plugin mounts one app at /veo (callback and spending-cap routes); importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

from fastapi import FastAPI

from veo_provider.plugin import VeoPlugin


def _posts(app: FastAPI) -> set[str]:
    return {getattr(r, "path", "") for r in app.routes if "POST" in getattr(r, "methods", ())}


def test_plugin_mounts_the_callback_and_cap_routes_at_veo_and_the_videos_app() -> None:
    try:
        from airflow._shared.plugins_manager import is_valid_plugin
    except ImportError:  # before Airflow 3.2 it is core's own
        from airflow.plugins_manager import is_valid_plugin

    assert is_valid_plugin(VeoPlugin)
    assert VeoPlugin.name == "veo_callbacks"
    entry, ui = VeoPlugin.fastapi_apps
    assert ui["url_prefix"] == "/veo-ui" and isinstance(ui["app"], FastAPI)
    assert [a["destination"] for a in VeoPlugin.react_apps] == ["dag_run", "task_instance", "nav"]
    assert entry["url_prefix"] == "/veo" and entry["name"] == "Veo callback receiver"
    app = entry["app"]
    assert isinstance(app, FastAPI)
    assert _posts(app) == {"/callback", "/quota"}
    from veo_provider.callbacks.access_log import HideSignature

    assert [m.cls for m in app.user_middleware] == [HideSignature]  # the access log never sees a signature
    assert VeoPlugin.fastapi_apps is VeoPlugin.fastapi_apps  # built once
    assert VeoPlugin().fastapi_apps[0]["app"] is app


def test_importing_the_plugin_does_not_import_fastapi() -> None:
    """Not on top of what Airflow's plugin manager imports itself (Airflow 3.0's imports FastAPI)."""
    code = (
        "import sys, airflow.plugins_manager; before = 'fastapi' in sys.modules; "
        "import veo_provider.plugin; print(before or 'fastapi' not in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "True"


def test_the_entry_point_and_the_provider_info_name_the_same_plugin_class() -> None:
    from pathlib import Path

    import tomllib

    import veo_provider

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    entry = pyproject["project"]["entry-points"]["airflow.plugins"]["veo_callbacks"]
    [info] = veo_provider.get_provider_info()["plugins"]
    assert entry.replace(":", ".") == info["plugin-class"] == "veo_provider.plugin.VeoPlugin"


class _GcSpy:
    def __init__(self, monkeypatch) -> None:
        import gc

        import veo_provider.plugin as plugin

        self.calls: list[str] = []
        monkeypatch.setattr(plugin, "_frozen", False)
        monkeypatch.setattr(gc, "collect", lambda *a: self.calls.append("collect") or 0)
        monkeypatch.setattr(gc, "freeze", lambda: self.calls.append("freeze"))


def test_building_the_app_freezes_the_api_servers_startup_heap_once_per_process(monkeypatch, caplog) -> None:
    """A full collection walking Airflow's whole heap paused every request (up to 0.6 s each)."""
    import logging

    from veo_provider.plugin import build_app, freeze_startup_heap

    spy = _GcSpy(monkeypatch)
    monkeypatch.delenv("AIRFLOW__VEO__API_SERVER_GC_FREEZE", raising=False)
    with caplog.at_level(logging.INFO, logger="veo_provider.plugin"):
        build_app()
    assert spy.calls == ["collect", "freeze"]
    assert "[veo] api_server_gc_freeze = False" in caplog.text
    assert freeze_startup_heap() is False and spy.calls == ["collect", "freeze"], "once per process"


def test_api_server_gc_freeze_false_leaves_the_garbage_collector_alone(monkeypatch) -> None:
    from veo_provider.plugin import freeze_startup_heap

    spy = _GcSpy(monkeypatch)
    monkeypatch.setenv("AIRFLOW__VEO__API_SERVER_GC_FREEZE", "False")
    assert freeze_startup_heap() is False and spy.calls == []
