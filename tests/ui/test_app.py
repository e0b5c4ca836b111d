"""The Videos routes inside an api-server-like app, on a real metadata DB, behind Airflow's own auth."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.ui.conftest import ASSET, BIG, PROMPTS, VideoDB
from veo_provider import compat
from veo_provider.ui import UI_PREFIX, browser_session

RUN = f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/manual__videos"
SIZE = ASSET.stat().st_size
VIDEO_TABLES = ("task_instance", "xcom", "task_state_store", "variable", "dag_run")


def stream_path(task_id: str, map_index: int, dag: str = "videos_dag", run: str = "manual__videos") -> str:
    return f"{UI_PREFIX}/api/dags/{dag}/dagRuns/{run}/taskInstances/{task_id}/{map_index}/video"


@pytest.fixture
def viewer(video_db: VideoDB) -> dict[str, str]:
    return video_db.headers("viewer")


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("path", [f"{RUN}/videos", stream_path("clips", 0)])
def test_without_credentials_every_route_answers_401(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401 and b"ftyp" not in r.content


@pytest.mark.parametrize("path", [f"{RUN}/videos", stream_path("clips", 0)])
def test_a_forged_token_is_refused(client: TestClient, path: str) -> None:
    assert client.get(path, headers={"Authorization": "Bearer not.a.jwt"}).status_code == 403


@pytest.mark.parametrize(
    "path",
    [f"{RUN}/videos", f"{RUN}/videos?task_id=clips&map_index=0", stream_path("clips", 0), stream_path("nope", 0)],
)
def test_a_user_limited_to_another_dag_gets_nothing_of_this_one(
    client: TestClient, video_db: VideoDB, path: str
) -> None:
    r = client.get(path, headers=video_db.headers("outsider"))
    assert r.status_code == 403
    assert "clip" not in r.text and "job-" not in r.text and b"ftyp" not in r.content


def test_the_outsider_reads_the_dag_it_may_read(client: TestClient, video_db: VideoDB) -> None:
    r = client.get(
        f"{UI_PREFIX}/api/dags/private_dag/dagRuns/manual__private/videos", headers=video_db.headers("outsider")
    )
    assert r.status_code == 200 and [v["task_id"] for v in r.json()["videos"]] == ["secret"]


def test_the_session_cookie_is_a_credential(client: TestClient, video_db: VideoDB) -> None:
    # 3.1+: the UI's own cookie; 3.0 reads none, and the Videos app keeps its own (ui/browser_session.py).
    name = "_token" if compat.API_READS_SESSION_COOKIE else browser_session.COOKIE_NAME
    with TestClient(client.app, cookies={name: video_db.tokens["viewer"]}) as browser:
        assert browser.get(f"{RUN}/videos").status_code == 200
        assert browser.get(stream_path("clips", 0), headers={"Range": "bytes=0-9"}).status_code == 206


def test_an_unknown_run_is_404(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get(f"{UI_PREFIX}/api/dags/videos_dag/dagRuns/nope/videos", headers=viewer)
    assert r.status_code == 404 and "nope" in r.json()["detail"]


# ------------------------------------------------------------------------------------ the list


def test_the_run_lists_its_veo_task_instances_in_task_and_map_order(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get(f"{RUN}/videos", headers=viewer)
    assert r.status_code == 200
    body = r.json()
    keys = [(v["task_id"], v["map_index"]) for v in body["videos"]]
    assert keys == [("clips", 0), ("clips", 1), ("clips", 2), ("failed", -1), ("single", -1)]  # not_veo left out
    assert body["total_entries"] == 5


def test_a_finished_clip_shows_what_it_was_asked_and_where_it_was_written(
    client: TestClient, video_db: VideoDB, viewer: dict[str, str]
) -> None:
    first, second = client.get(f"{RUN}/videos", headers=viewer).json()["videos"][:2]
    assert first["prompt"] == PROMPTS[0] and second["prompt"] == PROMPTS[1], "the whole prompt, however long"
    assert (first["model"], first["action"], first["aspect_ratio"]) == ("veo3", "text2video", "9:16")
    assert (first["state"], first["veo_task_id"], first["trace_id"]) == ("success", "job-clips-0", "trace-job-clips-0")
    assert first["output_path"] == str(video_db.files / "clip-0.mp4")
    assert second["output_path"] == f"file://{video_db.files / 'clip-1.mp4'}"
    assert first["stream_url"] == stream_path("clips", 0) and first["video_url"] is None
    assert first["elapsed_seconds"] == 72.0 and first["waiting"] is False


def test_a_waiting_clip_shows_its_job_and_how_long_it_has_waited(client: TestClient, viewer: dict[str, str]) -> None:
    waiting = client.get(f"{RUN}/videos", headers=viewer).json()["videos"][2]
    assert waiting["state"] == "deferred" and waiting["waiting"] is True
    assert waiting["veo_task_id"] == "job-clips-2" and waiting["prompt"] == PROMPTS[2]
    assert 89 <= waiting["elapsed_seconds"] < 200
    assert waiting["stream_url"] is None and waiting["output_path"] is None


def test_a_clip_stored_nowhere_offers_the_vendor_url_and_a_failure_its_reason(
    client: TestClient, viewer: dict[str, str]
) -> None:
    videos = {v["task_id"]: v for v in client.get(f"{RUN}/videos", headers=viewer).json()["videos"]}
    assert (
        videos["single"]["video_url"] == "https://cdn.example/only-url.mp4" and videos["single"]["stream_url"] is None
    )
    failed = videos["failed"]
    assert failed["state"] == "failed"
    assert (failed["error_code"], failed["error_message"]) == ("content_policy", "the prompt was refused")


def test_one_task_instance_is_listed_alone(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get(f"{RUN}/videos", params={"task_id": "clips", "map_index": 1}, headers=viewer)
    assert [(v["task_id"], v["map_index"]) for v in r.json()["videos"]] == [("clips", 1)]


def test_listing_100_mapped_videos_takes_as_many_queries_as_listing_five(
    client: TestClient, viewer: dict[str, str]
) -> None:
    from airflow import settings
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        # The auth manager's own reads (token revocation, DAG team) are cached for a while: not ours.
        if any(table in statement for table in VIDEO_TABLES):
            statements.append(statement)

    event.listen(settings.engine, "before_cursor_execute", count)
    try:
        small = client.get(f"{RUN}/videos", headers=viewer)
        n_small, statements[:] = len(statements), []
        big = client.get(f"{UI_PREFIX}/api/dags/big_dag/dagRuns/manual__big/videos", headers=viewer)
        n_big = len(statements)
    finally:
        event.remove(settings.engine, "before_cursor_execute", count)
    assert small.status_code == big.status_code == 200
    assert [v["map_index"] for v in big.json()["videos"]] == list(range(BIG))
    assert n_big == n_small <= 4, (n_small, n_big)


def test_listing_reads_no_xcom_of_another_operator(
    client: TestClient, viewer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.xcom import XComModel

    read: list[str] = []
    original = XComModel.deserialize_value

    def spy(row):  # type: ignore[no-untyped-def]
        read.append(row.task_id)
        return original(row)

    monkeypatch.setattr(XComModel, "deserialize_value", staticmethod(spy))
    assert client.get(f"{RUN}/videos", headers=viewer).status_code == 200
    assert read and "not_veo" not in read, read


# ------------------------------------------------------------------------------------ the stream


def test_the_stored_file_is_served_whole_with_its_type(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get(stream_path("clips", 0), headers=viewer)
    assert r.status_code == 200 and r.content == ASSET.read_bytes()
    assert r.headers["content-type"] == "video/mp4" and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(SIZE) and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-50", SIZE - 50, SIZE - 1),
        ("bytes=10-99999999", 10, SIZE - 1),
    ],
)
def test_a_range_is_answered_206_with_exactly_those_bytes(
    client: TestClient, video_db: VideoDB, viewer: dict[str, str], asked: str, first: int, last: int
) -> None:
    r = client.get(stream_path("clips", 1), headers={**viewer, "Range": asked})  # a file:// URL record
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"  # the emulator's clips are one length
    assert r.content == (video_db.files / "clip-1.mp4").read_bytes()[first : last + 1]
    assert r.headers["content-length"] == str(last - first + 1)


def test_a_range_past_the_end_is_416(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get(stream_path("clips", 0), headers={**viewer, "Range": f"bytes={SIZE}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{SIZE}"


def test_head_answers_the_size_without_the_body(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.head(stream_path("clips", 0), headers=viewer)
    assert r.status_code == 200 and r.headers["content-length"] == str(SIZE) and r.content == b""


@pytest.mark.parametrize(
    "path",
    [
        stream_path("clips", 2),  # still waiting: nothing written
        stream_path("single", -1),  # only the vendor URL
        stream_path("clips", 7),  # no such task instance
        stream_path("..%2F..%2F..%2Fetc%2Fpasswd", 0),
        stream_path("clips", 0, run="manual__big"),  # another run's records
    ],
)
def test_only_a_file_recorded_for_that_task_instance_is_served(
    client: TestClient, viewer: dict[str, str], path: str
) -> None:
    r = client.get(path + "?output_path=/etc/passwd&path=/etc/passwd", headers=viewer)
    assert r.status_code == 404 and b"root:" not in r.content


@pytest.mark.parametrize("task_id", ["tampered", "pruned"])
def test_a_result_path_the_worker_did_not_render_is_neither_listed_nor_served(
    client: TestClient, viewer: dict[str, str], task_id: str
) -> None:
    run = f"{UI_PREFIX}/api/dags/edited_dag/dagRuns/manual__edited"
    [card] = client.get(f"{run}/videos", params={"task_id": task_id}, headers=viewer).json()["videos"]
    assert card["output_path"] is None and card["stream_url"] is None
    r = client.get(stream_path(task_id, -1, dag="edited_dag", run="manual__edited"), headers=viewer)
    assert r.status_code == 404 and b"ftyp" not in r.content, "the file exists: only the binding refuses it"


def test_a_recorded_file_that_is_gone_is_404(client: TestClient, video_db: VideoDB, viewer: dict[str, str]) -> None:
    r = client.get(stream_path("secret", -1, dag="private_dag", run="manual__private"), headers=viewer)
    assert r.status_code == 404 and "not there" in r.json()["detail"]
