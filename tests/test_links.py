"""The "Veo video" extra link: the player page of a stored file, the vendor URL only when nothing was stored."""

from __future__ import annotations

import ast
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from veo_provider.links import VeoVideoLink, video_link

KEY = SimpleNamespace(dag_id="veo_dag", run_id="manual__2026-01-01T00:00:00+00:00", task_id="generate", map_index=2)
PLAYER = "veo-ui/player/veo_dag/manual__2026-01-01T00%3A00%3A00%2B00%3A00/generate/2"


def result(output_path: str | None, video_url: str | None = "https://cdn.example/v.mp4") -> dict[str, Any]:
    return {"task_id": "job-1", "video_url": video_url, "output_path": output_path, "state": "succeeded"}


def test_a_stored_file_opens_the_player_page_relative_to_the_ui_without_a_base_url() -> None:
    assert video_link(result("/data/v.mp4"), KEY, None) == PLAYER


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://airflow.example.com", f"https://airflow.example.com/{PLAYER}"),
        ("https://airflow.example.com/team-a/", f"https://airflow.example.com/team-a/{PLAYER}"),
        ("http://localhost:8080", f"http://localhost:8080/{PLAYER}"),
        ("/team-a", PLAYER),  # a path only: the UI's <base href> already holds it
        ("", PLAYER),
    ],
)
def test_the_player_link_is_absolute_on_the_configured_api_server(base_url: str, expected: str) -> None:
    assert video_link(result("s3://bucket/v.mp4"), KEY, base_url) == expected


def test_an_unmapped_task_links_map_index_minus_one() -> None:
    key = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    assert video_link(result("/v.mp4"), key, None) == "veo-ui/player/d/r/t/-1"


@pytest.mark.parametrize("stored", [None, ""])
def test_nothing_stored_opens_the_vendor_url(stored: str | None) -> None:
    assert video_link(result(stored), KEY, "https://airflow.example.com") == "https://cdn.example/v.mp4"


@pytest.mark.parametrize(
    "value", [None, "not a dict", result(None, video_url="javascript:alert(1)"), result(None, video_url=None)]
)
def test_no_result_or_no_web_url_gives_no_link(value: Any) -> None:
    assert video_link(value, KEY, None) == ""


def test_get_link_reads_the_result_and_the_api_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import XCom

    asked: list[tuple[Any, str]] = []

    def get_value(*, ti_key: Any, key: str) -> Any:
        asked.append((ti_key, key))
        return result("/data/v.mp4")

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    key = SimpleNamespace(**vars(KEY), state="success")
    assert VeoVideoLink().get_link(None, ti_key=key) == f"https://airflow.example.com/{PLAYER}"  # type: ignore[arg-type]
    assert asked == [(key, "return_value")]


def test_get_link_of_an_unfinished_task_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import XCom

    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: pytest.fail("read an XCom")))
    key = SimpleNamespace(**vars(KEY), state="deferred")
    assert VeoVideoLink().get_link(None, ti_key=key) == ""  # type: ignore[arg-type]


def test_importing_the_link_adds_only_the_ui_constants() -> None:
    """Operators import it at DAG-parse time: no FastAPI app, no ORM models, no UI views."""
    code = (
        "import sys; from airflow.providers.common.compat.sdk import BaseOperatorLink; before = set(sys.modules); "
        "import veo_provider.links; print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    added = ast.literal_eval(out.strip().splitlines()[-1])
    assert set(added) <= {"veo_provider", "veo_provider.links", "veo_provider.ui"}, added


@pytest.mark.parametrize("reads_cookie", [True, False])
def test_every_airflow_line_opens_the_player_page_of_a_stored_file(
    monkeypatch: pytest.MonkeyPatch, reads_cookie: bool
) -> None:
    """3.0's api-server takes no session cookie, but the Videos app keeps one of its own there."""
    from airflow.providers.common.compat.sdk import XCom

    from veo_provider import compat

    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: result("/data/v.mp4")))
    monkeypatch.setattr(compat, "API_READS_SESSION_COOKIE", reads_cookie)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    key = SimpleNamespace(**vars(KEY), state="success")
    assert VeoVideoLink().get_link(None, ti_key=key) == PLAYER  # type: ignore[arg-type]
