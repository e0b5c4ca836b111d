"""A real api-server on a seeded database and a logged-in headless Chromium page on it.

Shared by the browser check (``tests/ui/test_browser.py``) and the Videos tab's render figure
(``benchmarks/bench_ui.py``). The database is ``seed.py``'s (no scheduler, no emulator; the records
a finished run leaves); users log in as Airflow's login leaves them (its ``_token`` cookie).
Playwright drives Debian's ``chromium`` (``VEO_UI_CHROMIUM`` for another), never a downloaded one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.ui.seed import USERS, airflow_env

__all__ = [
    "ARGS",
    "CHROMIUM",
    "LIST_TIMING",
    "list_requests",
    "logged_in",
    "open_tab",
    "seeded_api_server",
    "token",
    "unavailable",
]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("VEO_UI_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


#: The resource timing of a Videos view's list request (``/videos``) and the page's clock now, or null.
LIST_TIMING = """() => { const e = performance.getEntriesByType('resource')
                       .filter(e => e.name.split('?')[0].endsWith('/videos'))[0];
                     return e ? {start: e.startTime, end: e.responseEnd, now: performance.now()} : null; }"""


def list_requests(page: Any) -> list[str]:
    """The URLs of the list requests ``page`` makes from now on (filled as they are sent)."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if r.url.split("?")[0].endswith("/videos") else None)
    return urls


def unavailable() -> str | None:
    """What is missing to drive a browser here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set VEO_UI_CHROMIUM)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def seeded_api_server(home: Path) -> Iterator[str]:
    """``airflow api-server`` (one worker) on a database seeded in ``home``; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "PYTEST_"))}
    env.update(airflow_env(home))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    })  # fmt: skip
    subprocess.run([sys.executable, "-m", "tests.ui.seed", str(home)], env=env, cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    port = _free_port()
    log = (home / "api-server.log").open("w")
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the api-server did not start:\n{(home / 'api-server.log').read_text()[-4000:]}")
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def token(base: str, user: str) -> str:
    r = httpx.post(f"{base}/auth/token", json={"username": user, "password": USERS[user]}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["access_token"])


@contextlib.contextmanager
def logged_in(base: str, user: str, viewport: dict[str, int]) -> Iterator[tuple[Any, Any]]:
    """A headless Chromium page holding ``user``'s session cookie, as Airflow's login leaves it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport)
            context.add_cookies([{"name": "_token", "value": token(base, user), "url": base}])
            yield context, context.new_page()
        finally:
            browser.close()


def open_tab(
    base: str, path: str, shot: Path | None, cards: int = 1, metadata: bool = True, user: str = "viewer"
) -> dict[str, Any]:
    """Open a Videos view, wait for ``cards`` cards (and, with ``metadata``, every stored clip's
    duration); what it shows, its list requests, and ``render_ms`` from its list request to the cards."""
    with logged_in(base, user, {"width": 1400, "height": 1000}) as (_, page):
        lists = list_requests(page)
        page.goto(f"{base}{path}", wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=video-card]').length >= {cards}", timeout=120_000
        )
        # From the tab's one list request to every card on screen (the page itself excluded).
        timing = page.evaluate(LIST_TIMING)
        render_ms, answer_ms = timing["now"] - timing["start"], timing["end"] - timing["start"]
        if metadata:  # every player of a stored clip read its duration through the stream route
            page.wait_for_function(
                """() => [...document.querySelectorAll('video')]
                     // private_dag's file is gone (its card says so): every other stored clip plays
                     .filter(v => v.getAttribute('src').startsWith('/veo-ui/') && !v.src.includes('/private_dag/'))
                     .every(v => v.readyState >= 1 && v.duration > 0)""",
                timeout=60_000,
            )
        facts = page.evaluate(
            """() => ({
                videos: [...document.querySelectorAll('video')].map(v => ({
                    src: v.getAttribute('src'), preload: v.getAttribute('preload'), duration: v.duration})),
                prompts: [...document.querySelectorAll('[data-testid=prompt]')].map(p => p.textContent),
                cards: document.querySelectorAll('[data-testid=video-card]').length,
                runs: [...document.querySelectorAll('[data-testid=run]')].map(p => p.textContent),
                dags: [...document.querySelectorAll('select[aria-label=DAG] option')].map(o => o.value),
            })"""
        )
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)
        facts["list_requests"] = lists
        facts["render_ms"], facts["answer_ms"] = render_ms, answer_ms
        return dict(facts)
