"""The "Veo videos" page's route: every readable DAG's videos, newest first, filtered, a page at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.ui.conftest import VideoDB
from tests.ui.seed import BULK
from veo_provider.ui import UI_PREFIX

GALLERY = f"{UI_PREFIX}/api/videos"


def page(client: TestClient, video_db: VideoDB, user: str = "viewer", **params: Any) -> dict[str, Any]:
    r = client.get(GALLERY, params=params, headers=video_db.headers(user))
    assert r.status_code == 200, r.text
    return r.json()


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    from airflow.settings import engine
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_without_credentials_the_page_is_401(client):
    assert client.get(GALLERY).status_code == 401


def test_the_first_page_is_the_newest_videos_of_every_readable_dag(client, video_db):
    first = page(client, video_db, limit=10)
    assert len(first["videos"]) == 10 and first["next_cursor"]
    assert first["dag_ids"] == ["big_dag", "bulk_dag", "edited_dag", "private_dag", "videos_dag"]
    assert "bulk_dag" not in {v["dag_id"] for v in first["videos"]}, "the bulk rows are the oldest"
    assert all(v["dag_id"] != "videos_dag" or v["task_id"] != "not_veo" for v in first["videos"])


def test_keyset_pages_walk_every_video_of_a_dag_once_newest_first(client, video_db):
    seen: list[int] = []
    cursor = None
    while True:
        got = page(client, video_db, dag_id="bulk_dag", limit=100, **({"cursor": cursor} if cursor else {}))
        assert got["dag_ids"] is None or cursor is None
        seen += [v["map_index"] for v in got["videos"]]
        cursor = got["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(BULK - 1, -1, -1))


def test_a_page_deep_in_10000_videos_takes_a_constant_number_of_queries_and_little_time(client, video_db):
    first = page(client, video_db, dag_id="bulk_dag", limit=50)
    deep = first
    for _ in range(3):
        deep = page(client, video_db, dag_id="bulk_dag", limit=50, cursor=deep["next_cursor"])
    counts, times = [], []
    for params in (
        {"limit": 50},
        {"limit": 50, "cursor": deep["next_cursor"]},
        {"limit": 100, "cursor": first["next_cursor"]},
    ):
        with counted_queries() as queries:
            started = time.perf_counter()
            got = page(client, video_db, dag_id="bulk_dag", **params)
            times.append(time.perf_counter() - started)
        assert got["videos"], params
        counts.append(len([q for q in queries if q.lstrip().upper().startswith("SELECT")]))
    # The first page also reads the DAG filter's list; later pages do not.
    assert counts[1] == counts[2] <= counts[0] <= counts[1] + 1, counts
    assert max(times) < 2.0, f"a page of 10,000 videos took {max(times):.2f} s (generous bound, busy machine)"


def test_a_user_who_may_read_one_dag_sees_only_its_videos_and_nothing_else(client, video_db):
    got = page(client, video_db, "outsider")
    assert got["dag_ids"] == ["private_dag"]
    assert [(v["dag_id"], v["task_id"]) for v in got["videos"]] == [("private_dag", "secret")]
    assert got["next_cursor"] is None
    r = client.get(GALLERY, params={"dag_id": "videos_dag"}, headers=video_db.headers("outsider"))
    assert r.status_code == 403 and "clip" not in r.text


def test_filters_by_state_model_and_date(client, video_db):
    failed = page(client, video_db, dag_id="bulk_dag", state="failed", limit=100)
    assert failed["videos"] and {v["state"] for v in failed["videos"]} == {"failed"}
    assert {v["map_index"] % 10 for v in failed["videos"]} == {9}
    fast = page(client, video_db, model="veo3-fast", limit=100)
    assert {v["dag_id"] for v in fast["videos"]} == {"bulk_dag"}
    not_fast = page(client, video_db, model="veo3", limit=100)
    assert not_fast["videos"] and "bulk_dag" not in {v["dag_id"] for v in not_fast["videos"]}
    pivot = page(client, video_db, dag_id="bulk_dag", limit=1)["videos"][0]["start_date"]
    older = page(client, video_db, dag_id="bulk_dag", start_date_lt=pivot, limit=5)["videos"]
    assert older and all(v["start_date"] < pivot for v in older)
    newer = page(client, video_db, dag_id="bulk_dag", start_date_gte=pivot, limit=5)["videos"]
    assert [v["start_date"] for v in newer] == [pivot]


def test_the_cards_of_the_page_are_the_cards_of_the_run_tab(client, video_db):
    got = page(client, video_db, dag_id="videos_dag", limit=100)
    run = client.get(
        f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos/videos", headers=video_db.headers("viewer")
    ).json()["videos"]

    def cards(videos: list[dict[str, Any]]) -> list[dict[str, Any]]:  # the time waited moves on
        return sorted(({**v, "elapsed_seconds": None} for v in videos), key=lambda v: (v["task_id"], v["map_index"]))

    assert cards(got["videos"]) == cards(run) and len(run) == 5


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [({"cursor": "page-2"}, 400, "cursor 'page-2' is not a page cursor"), ({"limit": 101}, 422, "limit")],
)
def test_a_bad_cursor_or_limit_is_refused_naming_it(client, video_db, params, status, says):
    r = client.get(GALLERY, params=params, headers=video_db.headers("viewer"))
    assert r.status_code == status and says in r.text
