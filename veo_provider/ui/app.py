"""The api-server app of the Videos views: list a run's videos, stream one, a player page, the React bundle.

Every route is guarded by Airflow's own authorization for the DAG named in the path
(``requires_access_dag``: the task instances and their XComs), so a user who may not read a DAG
gets nothing of it. What a route acts on (which file) comes from Airflow's records of the task
instance, never from the request. On Airflow 3.0 the app also keeps a browser session of its
own (``browser_session.py``), since 3.0's api-server reads no cookie.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select

from veo_provider import compat
from veo_provider.ui import PLAYER_ROUTE, UI_PREFIX, browser_session, gallery, player, store, streaming
from veo_provider.ui.videos import TaskInstanceFacts, VideoView, video_view

__all__ = ["STATIC_DIR", "GalleryPage", "VideoList", "create_ui_app"]

#: The built bundle (``www/`` builds into it; shipped in the wheel).
STATIC_DIR = Path(__file__).with_name("static")

#: Reading a video's card or bytes is reading its task instance and its XCom result.
READ_VIDEOS = [
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE)),
    Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM)),
]


class VideoList(BaseModel):
    videos: list[VideoView]
    total_entries: int


class GalleryPage(BaseModel):
    videos: list[VideoView]
    #: Pass it as ``cursor`` for the next page; None on the last page.
    next_cursor: str | None
    #: The readable DAGs with Veo videos (on the first page only: it does not change between pages).
    dag_ids: list[str] | None = None


def _views(request: Request, facts: list[TaskInstanceFacts]) -> list[VideoView]:
    now = datetime.now(timezone.utc)
    return [
        video_view(
            f.dag_id,
            f.run_id,
            f,
            now,
            request.url_for(
                "stream_video", dag_id=f.dag_id, run_id=f.run_id, task_id=f.task_id, map_index=str(f.map_index)
            ).path,
        )
        for f in facts
    ]


def _run_exists(session: SessionDep, dag_id: str, run_id: str) -> bool:
    from airflow.models.dagrun import DagRun

    return session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)) is not None


def list_videos(
    request: Request,
    session: SessionDep,
    dag_id: str,
    run_id: str,
    task_id: Annotated[str | None, Query(description="Only this task's instances")] = None,
    map_index: Annotated[int | None, Query(description="Only this task instance (with task_id)")] = None,
) -> VideoList:
    """The Veo task instances of one DAG run (mapped ones in map order), with what each card shows."""
    facts = store.load_task_instances(session, dag_id, run_id, task_id, map_index)
    if not facts and not _run_exists(session, dag_id, run_id):
        raise HTTPException(404, f"DAG run {run_id!r} of DAG {dag_id!r} not found")
    views = _views(request, facts)
    return VideoList(videos=views, total_entries=len(views))


def list_gallery(
    request: Request,
    session: SessionDep,
    user: GetUserDep,
    dag_id: Annotated[str | None, Query(description="Only this DAG's videos")] = None,
    state: Annotated[list[str] | None, Query(description="Only task instances in these states")] = None,
    model: Annotated[str | None, Query(description="Only videos of this model (as the task rendered it)")] = None,
    start_date_gte: Annotated[datetime | None, Query(description="Started at or after")] = None,
    start_date_lt: Annotated[datetime | None, Query(description="Started before")] = None,
    cursor: Annotated[str | None, Query(description="The next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=gallery.PAGE_MAX)] = 24,
) -> GalleryPage:
    """The Veo videos of every DAG the user may read, newest first, one page (constant queries)."""
    from airflow.api_fastapi.app import get_auth_manager

    # As Airflow's own list routes do: the DAGs this user may read, then only those are queried.
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
    if dag_id and dag_id not in readable:
        # requires_access_dag checks a dag_id query parameter only from 3.1 (3.0 reads the path's).
        raise HTTPException(403, "Forbidden")
    query = gallery.GalleryQuery(
        dag_id=dag_id or None,
        states=tuple(state or ()),
        model=model or None,
        since=start_date_gte,
        until=start_date_lt,
        cursor=cursor or None,
        limit=limit,
    )
    try:
        facts, next_cursor = gallery.gallery_page(session, readable, query)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    dag_ids = gallery.dags_with_videos(session, readable) if query.cursor is None else None
    return GalleryPage(videos=_views(request, facts), next_cursor=next_cursor, dag_ids=dag_ids)


def stream_video(
    request: Request, session: SessionDep, dag_id: str, run_id: str, task_id: str, map_index: int
) -> Response:
    """The file this task instance wrote to its ``output_path`` (Range supported)."""
    output_path = store.recorded_output(session, dag_id, run_id, task_id, map_index)
    if output_path is None:
        raise HTTPException(
            404,
            "this task instance recorded no stored video (or its result's output_path is not the one it "
            "rendered, or Airflow no longer keeps its rendered fields)",
        )
    session.close()  # the stream may last minutes: do not hold a DB connection for it
    return streaming.stream(streaming.open_recorded(output_path), request.headers.get("range"), request.method)


def _task_instance_url(request: Request, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The task instance's page in Airflow's UI, under the api-server's root (where this app is mounted)."""
    from urllib.parse import quote

    root = request.scope.get("root_path", "").removesuffix(UI_PREFIX)
    path = f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return path + (f"/mapped/{map_index}" if map_index >= 0 else "")


def player_page(
    request: Request, session: SessionDep, dag_id: str, run_id: str, task_id: str, map_index: int
) -> HTMLResponse:
    """One task instance's video and what its card shows, as a page of its own (the extra link opens it)."""
    facts = store.load_task_instances(session, dag_id, run_id, task_id, map_index)
    if not facts:
        raise HTTPException(404, f"no Veo task instance {task_id!r} [{map_index}] in run {run_id!r} of {dag_id!r}")
    [view] = _views(request, facts)
    page = player.render_player(view, _task_instance_url(request, dag_id, run_id, task_id, map_index))
    return HTMLResponse(page, headers=player.HEADERS)


def create_ui_app() -> FastAPI:
    """The app the plugin mounts at ``veo_provider.ui.UI_PREFIX``."""
    app = FastAPI(title="Veo videos", description="The Videos views of the Veo provider.")
    app.add_api_route(
        "/api/dags/{dag_id}/dagRuns/{run_id}/videos",
        list_videos,
        methods=["GET"],
        response_model=VideoList,
        dependencies=READ_VIDEOS,
        name="list_videos",
    )
    # No DAG in the path: requires_access_dag checks a ``dag_id`` filter when given, else that the
    # user may read task instances at all; the page then reads only the DAGs the user may read.
    app.add_api_route(
        "/api/videos",
        list_gallery,
        methods=["GET"],
        response_model=GalleryPage,
        dependencies=READ_VIDEOS,
        name="list_gallery",
    )
    app.add_api_route(
        "/api/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/video",
        stream_video,
        methods=["GET", "HEAD"],
        dependencies=READ_VIDEOS,
        name="stream_video",
        response_class=Response,
    )
    # A page, not an API: plain FastAPI and the routes above, so it works without react_apps (3.0).
    app.add_api_route(
        PLAYER_ROUTE,
        player_page,
        methods=["GET"],
        dependencies=READ_VIDEOS,
        name="player_page",
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    if not compat.API_READS_SESSION_COOKIE:  # 3.0: a browser carries no credential Airflow reads
        browser_session.install(app)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
