"""The api-server app of the Videos views: list a run's videos, stream one, serve the React bundle.

Every route is guarded by Airflow's own authorization for the DAG named in the path
(``requires_access_dag``: the task instances and their XComs), so a user who may not read a DAG
gets nothing of it. What a route acts on (which file) comes from Airflow's records of the task
instance, never from the request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import select

from veo_provider.ui import store, streaming
from veo_provider.ui.videos import VideoView, video_view

__all__ = ["STATIC_DIR", "VideoList", "create_ui_app"]

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
    now = datetime.now(timezone.utc)
    views = [
        video_view(
            dag_id,
            run_id,
            f,
            now,
            request.url_for(
                "stream_video", dag_id=dag_id, run_id=run_id, task_id=f.task_id, map_index=str(f.map_index)
            ).path,
        )
        for f in facts
    ]
    return VideoList(videos=views, total_entries=len(views))


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
    app.add_api_route(
        "/api/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/video",
        stream_video,
        methods=["GET", "HEAD"],
        dependencies=READ_VIDEOS,
        name="stream_video",
        response_class=Response,
    )
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
