"""The player page: one task instance's video and its facts, behind Airflow's own auth, every value escaped."""

from __future__ import annotations

from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from tests.ui.conftest import PROMPTS, VideoDB
from veo_provider.ui import UI_PREFIX, player_path
from veo_provider.ui.player import CSP, render_player
from veo_provider.ui.videos import TaskInstanceFacts, video_view

STREAM = f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos/taskInstances/clips/0/video"


class _Page(HTMLParser):
    """The page's tags with their attributes, its script elements, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def page(dag: str = "videos_dag", run: str = "manual__videos", task: str = "clips", index: int = 0) -> str:
    return player_path(dag, run, task, index)


# ------------------------------------------------------------------------------------ refusals


def test_without_credentials_the_page_is_401(client: TestClient) -> None:
    r = client.get(page())
    assert r.status_code == 401 and PROMPTS[0] not in r.text


def test_a_forged_token_is_refused(client: TestClient) -> None:
    r = client.get(page(), headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 403 and PROMPTS[0] not in r.text


@pytest.mark.parametrize("target", [page(), page(task="nope"), page(task="single", index=-1)])
def test_a_user_limited_to_another_dag_gets_nothing_of_this_one(
    client: TestClient, video_db: VideoDB, target: str
) -> None:
    r = client.get(target, headers=video_db.headers("outsider"))
    assert r.status_code == 403
    assert "clip" not in r.text and "job-" not in r.text and "<video" not in r.text


def test_the_outsider_sees_the_page_of_the_dag_it_may_read(client: TestClient, video_db: VideoDB) -> None:
    r = client.get(page("private_dag", "manual__private", "secret", -1), headers=video_db.headers("outsider"))
    assert r.status_code == 200 and "private clip" in r.text


def test_a_task_instance_that_is_not_a_veo_one_is_404(client: TestClient, video_db: VideoDB) -> None:
    for target in (page(task="not_veo", index=-1), page(index=7), page(run="nope")):
        assert client.get(target, headers=video_db.headers("viewer")).status_code == 404, target


# ------------------------------------------------------------------------------------ the page


def test_the_page_plays_the_stored_file_from_the_range_route_with_the_cards_facts(
    client: TestClient, video_db: VideoDB
) -> None:
    r = client.get(page(), headers=video_db.headers("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    parsed = _Page(r.text)
    [video] = parsed.all("video")
    assert video["src"] == STREAM and video["preload"] == "metadata" and "controls" in video
    text = " ".join(parsed.text)
    for fact in (PROMPTS[0], "veo3", "text2video", "9:16", "success", "job-clips-0", "trace-job-clips-0"):
        assert fact in text, fact
    assert str(video_db.files / "clip-0.mp4") in text
    assert "1 min 12 s" in text, "the elapsed time of the try"
    assert client.get(video["src"], headers={**video_db.headers("viewer"), "Range": "bytes=0-9"}).status_code == 206


def test_the_page_links_back_to_its_task_instance(client: TestClient, video_db: VideoDB) -> None:
    links = [a["href"] for a in _Page(client.get(page(index=1), headers=video_db.headers("viewer")).text).all("a")]
    assert "/dags/videos_dag/runs/manual__videos/tasks/clips/mapped/1" in links


def test_the_page_is_self_contained_under_a_strict_policy(client: TestClient, video_db: VideoDB) -> None:
    r = client.get(page(), headers=video_db.headers("viewer"))
    parsed = _Page(r.text)
    assert r.headers["content-security-policy"] == CSP and "default-src 'none'" in CSP and "script-src" not in CSP
    assert "unsafe-inline" not in CSP and r.headers["x-content-type-options"] == "nosniff"
    assert not parsed.all("script") and not parsed.all("link") and not parsed.all("img")


def test_a_waiting_task_shows_its_job_and_no_player(client: TestClient, video_db: VideoDB) -> None:
    r = client.get(page(index=2), headers=video_db.headers("viewer"))
    assert r.status_code == 200 and "<video" not in r.text
    assert "job-clips-2" in r.text and "not finished yet" in r.text and "Waited" in r.text


def test_a_task_that_stored_nothing_links_the_vendor_url_and_a_failure_shows_its_reason(
    client: TestClient, video_db: VideoDB
) -> None:
    vendor = _Page(client.get(page(task="single", index=-1), headers=video_db.headers("viewer")).text)
    assert "https://cdn.example/only-url.mp4" in [a["href"] for a in vendor.all("a")] and not vendor.all("video")
    failed = client.get(page(task="failed", index=-1), headers=video_db.headers("viewer")).text
    assert "content_policy the prompt was refused" in failed and "<video" not in failed


def test_a_prompt_with_markup_is_shown_as_text() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'
    facts = TaskInstanceFacts(
        task_id="t<b>",
        map_index=-1,
        state="success",
        result={"task_id": "job\"'><i>", "video_url": "https://cdn.example/a.mp4", "output_path": "/v/a.mp4"},
        rendered={"prompt": hostile, "output_path": "/v/a.mp4", "model": "<u>veo3</u>"},
        dag_id="d",
        run_id="r",
    )
    view = video_view("d", "r", facts, datetime.now(timezone.utc), '/s?x="><script>')
    html = render_player(view, '/dags/d"><script>')
    parsed = _Page(html)
    assert not parsed.all("script") and not parsed.all("img") and not parsed.all("b") and not parsed.all("u")
    assert not parsed.all("i")
    assert hostile in "".join(parsed.text), "the prompt is shown whole, as text"
    assert parsed.all("video")[0]["src"] == '/s?x="><script>'
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
