"""A real Airflow metadata database (SQLite) with Veo task instances (see seed.py), and users of Airflow's own auth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support import forget_fernet
from tests.ui.seed import ASSET, BIG, PROMPTS, airflow_env, seed
from veo_provider.ui import UI_PREFIX

__all__ = ["ASSET", "BIG", "PROMPTS", "VideoDB"]


@dataclass
class VideoDB:
    files: Path
    tokens: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def forget_auth_manager() -> None:
    """Let ``init_auth_manager`` build a new one (3.1+ keep it in ``_AuthManagerState``, 3.0 in a global)."""
    from airflow.api_fastapi import app as airflow_app

    if hasattr(airflow_app, "_AuthManagerState"):
        airflow_app._AuthManagerState.instance = None
    else:
        airflow_app.auth_manager = None  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def video_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VideoDB]:
    """The filled database, and bearer tokens of ``viewer`` (every DAG) and ``outsider`` (private_dag)."""
    home = tmp_path_factory.mktemp("ui-airflow")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in airflow_env(home).items():
            mp.setenv(name, value)
        forget_fernet()  # the seeded home's key, not one built earlier in this process
        from airflow.api_fastapi import app as airflow_app
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        files = seed(home)
        forget_auth_manager()
        manager = airflow_app.init_auth_manager()
        tokens = {
            name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role="viewer"))
            for name in ("viewer", "outsider")
        }
        try:
            yield VideoDB(files=files, tokens=tokens)
        finally:
            forget_auth_manager()
            forget_fernet()


@pytest.fixture(scope="module")
def client(video_db: VideoDB) -> Iterator[TestClient]:
    """The UI app mounted the way Airflow mounts a plugin's fastapi_apps entry."""
    from veo_provider.ui.app import create_ui_app

    host = FastAPI()
    host.mount(UI_PREFIX, create_ui_app())
    with TestClient(host) as c:
        yield c
