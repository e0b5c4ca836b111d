"""The Videos tab in a real api-server and a real (headless) Chromium: the players load, the stream seeks.

Starts ``airflow api-server`` on a seeded SQLite database (``seed.py``: no scheduler, no
emulator; the records are those a finished run leaves), logs in as real users of the simple
auth manager (per-DAG access from ``auth_manager.py``), and opens the DAG run's and the task
instance's Videos tabs. Screenshots go to ``out/ui-videos/`` (``VEO_UI_OUT`` to change it).

Needs Playwright (``pip install playwright``, in the ``test`` extra) driving Debian's
``chromium`` (never a browser Playwright downloads); skipped, saying which is missing, on a
developer's machine, and failed instead under ``CI=true`` (``.ci/run`` installs both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.browser import ARGS, CHROMIUM, logged_in, open_tab, seeded_api_server, token, unavailable
from tests.ui.gate import require
from tests.ui.seed import ASSET, PROMPTS
from veo_provider import compat
from veo_provider.ui import player_path

pytestmark = pytest.mark.integration
#: The Videos tabs and the nav page are react_apps, which Airflow serves from 3.1.
needs_react_apps = pytest.mark.skipif(not compat.AIRFLOW_V_3_1_PLUS, reason="react_apps arrived in Airflow 3.1")

REPO = Path(__file__).resolve().parents[2]
RUN_TAB = "/dags/videos_dag/runs/manual__videos/plugin/veo-videos"
BIG_TAB = "/dags/big_dag/runs/manual__big/plugin/veo-videos"
TI_TAB = "/dags/videos_dag/runs/manual__videos/tasks/clips/mapped/1/plugin/veo-video"
GALLERY = "/plugin/veo-gallery"
STREAM = "/veo-ui/api/dags/videos_dag/dagRuns/manual__videos/taskInstances/clips/0/video"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real api-server (one worker) on a seeded database; its base URL."""
    require(unavailable())
    with seeded_api_server(tmp_path_factory.mktemp("ui-browser")) as base:
        yield base


def test_the_stream_answers_206_to_a_range_and_refuses_without_credentials(api_server: str) -> None:
    auth = {"Authorization": f"Bearer {token(api_server, 'viewer')}"}
    r = httpx.get(f"{api_server}{STREAM}", headers={**auth, "Range": "bytes=0-1023"}, timeout=30)
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 0-1023/{ASSET.stat().st_size}"
    assert r.headers["content-type"] == "video/mp4" and r.content == ASSET.read_bytes()[:1024]
    assert httpx.get(f"{api_server}{STREAM}", timeout=30).status_code == 401


def test_a_user_limited_to_another_dag_gets_nothing_from_the_api_server(api_server: str) -> None:
    auth = {"Authorization": f"Bearer {token(api_server, 'outsider')}"}
    listing = httpx.get(f"{api_server}/veo-ui/api/dags/videos_dag/dagRuns/manual__videos/videos", headers=auth)
    stream = httpx.get(f"{api_server}{STREAM}", headers=auth, timeout=30)
    assert listing.status_code == stream.status_code == 403
    assert "clip" not in listing.text and b"ftyp" not in stream.content


def _screenshots() -> Path:
    """Where the screenshots go (kept as test output)."""
    out = Path(os.environ.get("VEO_UI_OUT", REPO / "out" / "ui-videos"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _open_tab(
    api_server: str, path: str, shot: str, cards: int = 1, metadata: bool = True, user: str = "viewer"
) -> dict[str, Any]:
    return open_tab(api_server, path, _screenshots() / shot, cards, metadata, user)


@needs_react_apps
def test_the_run_tab_plays_each_stored_clip_with_its_prompt(api_server: str) -> None:
    facts = _open_tab(api_server, RUN_TAB, "dag-run-videos-tab.png", cards=5)
    assert facts["cards"] == 5 and len(facts["list_requests"]) == 1, facts
    stored = [v for v in facts["videos"] if v["src"].startswith("/veo-ui/")]
    assert [v["src"].rsplit("/", 3)[-3:-1] for v in stored] == [["clips", "0"], ["clips", "1"]]
    assert all(v["preload"] == "metadata" and v["duration"] > 0 for v in stored), stored
    assert facts["prompts"][0] == PROMPTS[0] and facts["prompts"][1].startswith(PROMPTS[1][:100])


@needs_react_apps
def test_the_task_instance_tab_shows_that_clip_alone(api_server: str) -> None:
    facts = _open_tab(api_server, TI_TAB, "task-instance-videos-tab.png")
    assert facts["cards"] == 1 and len(facts["list_requests"]) == 1, facts
    [player] = facts["videos"]
    assert player["src"].endswith("/taskInstances/clips/1/video") and player["duration"] > 0


@needs_react_apps
def test_a_run_of_100_mapped_videos_renders_from_one_list_request_without_reading_bytes(api_server: str) -> None:
    facts = _open_tab(api_server, BIG_TAB, "dag-run-100-videos.png", cards=100, metadata=False)
    assert facts["cards"] == 100 and len(facts["list_requests"]) == 1, facts["list_requests"]
    assert all(v["preload"] == "metadata" for v in facts["videos"])
    print(
        f"100 cards: list answered in {facts['answer_ms']:.0f} ms, rendered {facts['render_ms']:.0f} ms after it was sent"
    )
    # The request count above is the guard; wall time is the machine's (2 s idle here, 4-9 s while
    # other tests run on the same 2 cores), so only a pathological render fails here. The 2 s
    # target is figure 7 (benchmarks/bench_ui.py, against Airflow's own tab of the same run).
    assert facts["render_ms"] <= 20_000, f"{facts['render_ms']:.0f} ms from the list request to 100 cards"


@needs_react_apps
def test_the_nav_page_shows_the_newest_videos_of_every_readable_dag_from_one_request(api_server: str) -> None:
    facts = _open_tab(api_server, GALLERY, "veo-videos-page.png", cards=24)
    assert facts["cards"] == 24 and len(facts["list_requests"]) == 1, facts["list_requests"]
    assert facts["list_requests"][0].split("?")[0].endswith("/veo-ui/api/videos")
    assert facts["dags"] == ["", "big_dag", "bulk_dag", "edited_dag", "private_dag", "videos_dag"]
    assert len(facts["runs"]) == 24 and all(" · manual__" in r for r in facts["runs"])
    stored = [v for v in facts["videos"] if v["src"].startswith("/veo-ui/") and "/private_dag/" not in v["src"]]
    assert stored and all(v["duration"] > 0 for v in stored)


@needs_react_apps
def test_the_nav_page_of_a_user_limited_to_one_dag_shows_that_dag_alone(api_server: str) -> None:
    facts = _open_tab(api_server, GALLERY, "veo-videos-page-outsider.png", metadata=False, user="outsider")
    assert facts["cards"] == 1 and facts["runs"] == ["private_dag · manual__private"]
    assert facts["dags"] == ["", "private_dag"]


def _open_player(api_server: str, path: str, shot: str, user: str) -> dict[str, Any]:
    """Log in as Airflow's login does (its ``_token`` cookie), open Airflow's UI, then the player page.

    On 3.0 the UI moves that cookie into ``localStorage`` and deletes it; the player page then signs
    in with it (ui/browser_session.py). On 3.1+ the cookie itself is the credential.
    """
    out = _screenshots()
    with logged_in(api_server, user, {"width": 1200, "height": 900}) as (context, page):
        statuses: list[tuple[str, int]] = []
        page.on("response", lambda r: statuses.append((r.url.replace(api_server, ""), r.status)))
        page.goto(f"{api_server}/", wait_until="domcontentloaded", timeout=120_000)
        if not compat.API_READS_SESSION_COOKIE:
            page.wait_for_function("() => !!window.localStorage.getItem('token')", timeout=120_000)
        page.goto(f"{api_server}/{path.lstrip('/')}", wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(
            "() => !document.getElementById('veo-sign-in') && document.readyState === 'complete'",
            timeout=60_000,
        )
        videos = page.locator("video")
        if videos.count():
            page.wait_for_function(
                "() => { const v = document.querySelector('video'); return v.readyState >= 1 && v.duration > 0; }",
                timeout=60_000,
            )
        facts = page.evaluate(
            """() => ({text: document.body.innerText,
                       videos: [...document.querySelectorAll('video')].map(v => ({
                           src: v.getAttribute('src'), duration: v.duration}))})"""
        )
        facts["cookies"] = {c["name"]: c for c in context.cookies()}
        facts["statuses"] = statuses
        page.screenshot(path=str(out / shot), full_page=True)
        return dict(facts)


@pytest.mark.skipif(compat.API_READS_SESSION_COOKIE, reason="3.1+ answer a plain 401 (no sign-in page)")
def test_on_3_0_the_player_page_of_a_browser_not_logged_in_says_to_log_in(api_server: str) -> None:
    from playwright.sync_api import sync_playwright

    path = player_path("videos_dag", "manual__videos", "clips", 0)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_context().new_page()
            sessions: list[str] = []
            page.on("request", lambda r: sessions.append(r.url) if r.url.endswith("/veo-ui/session") else None)
            page.goto(f"{api_server}{path}", wait_until="load", timeout=120_000)
            page.wait_for_function("() => document.body.innerText.includes('Log in to Airflow')", timeout=30_000)
            text = page.evaluate("() => document.body.innerText")
        finally:
            browser.close()
    assert PROMPTS[0] not in text and not sessions  # no token in localStorage: nothing sent


def test_the_player_page_plays_in_a_browser_logged_in_to_airflow(api_server: str) -> None:
    path = player_path("videos_dag", "manual__videos", "clips", 0)
    facts = _open_player(api_server, path, "player-page.png", "viewer")
    [video] = facts["videos"]
    assert video["src"].endswith("/taskInstances/clips/0/video") and video["duration"] > 0, facts
    assert PROMPTS[0] in facts["text"]
    if not compat.API_READS_SESSION_COOKIE:  # 3.0: signed in once through the Videos app's own cookie
        cookie = facts["cookies"]["veo_ui_token"]
        assert cookie["path"] == "/veo-ui" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert [s for u, s in facts["statuses"] if u == "/veo-ui/session"] == [204]
        assert [s for u, s in facts["statuses"] if u == path] == [401, 200]


def test_the_player_page_of_another_dag_shows_nothing_of_it_in_the_browser(api_server: str) -> None:
    path = player_path("videos_dag", "manual__videos", "clips", 0)
    facts = _open_player(api_server, path, "player-page-outsider.png", "outsider")
    assert not facts["videos"] and PROMPTS[0] not in facts["text"] and "job-" not in facts["text"]
    assert [s for u, s in facts["statuses"] if u == path][-1] == 403
