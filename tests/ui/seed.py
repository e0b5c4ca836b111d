"""Fills an Airflow metadata database with Veo task instances (used by conftest.py and the browser check).

- ``videos_dag`` / ``manual__videos``: ``clips`` mapped over three prompts (two finished with a
  stored file, one deferred), ``single`` finished with only the vendor URL, ``failed`` failed, and
  ``not_veo`` (another operator, never listed).
- ``big_dag`` / ``manual__big``: ``many`` mapped over 100 prompts, all finished with a file.
- ``private_dag`` / ``manual__private``: the one DAG ``outsider`` may read (its file is gone).
- ``bulk_dag`` / ``manual__bulk``: ``bulk`` mapped over ``BULK`` task instances (model
  ``veo3-fast``, every tenth failed), inserted in bulk, for the gallery's 10,000-video checks.
- ``edited_dag`` / ``manual__edited``: ``tampered``, whose XCom result names a file the worker
  did not render, and ``pruned``, whose rendered fields Airflow no longer keeps.

``python -m tests.ui.seed HOME`` migrates the database of ``AIRFLOW_HOME`` and fills it.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import veo_provider.testing
from veo_provider import compat
from veo_provider.ledger import LEDGER_KEY, variables
from veo_provider.ledger.database import TaskInstanceRef

# The emulator's clips as installed (the version matrix runs these tests next to the wheel, without
# the source tree's veo_provider/).
ASSETS = Path(veo_provider.testing.__file__).resolve().parent / "assets"
#: The file of ``clips[0]`` (``clips[1]`` shows the emulator's second picture).
ASSET = ASSETS / "clip-1-720p.mp4"
PROMPTS = ["a red fox in snow", "a lighthouse at dusk, waves " * 20, "a paper boat on a river"]
BIG = 100
BULK = 10_000

DAG_FILE = textwrap.dedent(
    """
    from airflow.sdk import DAG, BaseOperator
    from veo_provider.operators.veo import VeoOperator


    class Noop(BaseOperator):
        def execute(self, context):
            return None


    with DAG("videos_dag", schedule=None):
        VeoOperator.partial(task_id="clips", model="veo3", aspect_ratio="9:16").expand(prompt=PROMPTS)
        VeoOperator(task_id="single", model="veo31-fast", prompt="one clip")
        VeoOperator(task_id="failed", model="veo3", prompt="refused clip")
        Noop(task_id="not_veo")

    with DAG("big_dag", schedule=None):
        VeoOperator.partial(task_id="many", model="veo3").expand(prompt=[f"clip {i}" for i in range(BIG)])

    with DAG("private_dag", schedule=None):
        VeoOperator(task_id="secret", model="veo3", prompt="private clip")

    with DAG("bulk_dag", schedule=None):
        VeoOperator.partial(task_id="bulk", model="veo3-fast").expand(prompt=["bulk 0"])

    with DAG("edited_dag", schedule=None):
        VeoOperator(task_id="tampered", model="veo3", prompt="edited")
        VeoOperator(task_id="pruned", model="veo3", prompt="pruned")
    """
)


def _result(job: str, prompt: str, output_path: str | None, video_url: str | None = None) -> dict[str, Any]:
    return {
        "task_id": job,
        "video_id": f"vid-{job}",
        "video_url": video_url or f"https://cdn.example/{job}.mp4",
        "state": "succeeded",
        "trace_id": f"trace-{job}",
        "created_at": None,
        "complete_at": None,
        "model": "veo3",
        "action": "text2video",
        "output_path": output_path,
        "prompt": prompt,
        "resolution": None,
    }


def _ledger(job: str | None, prompt: str, **extra: Any) -> str:
    entry = {
        "state": "submitted" if job else "submitting",
        "key": f"key-{job}",
        "task_id": job,
        "trace_id": f"trace-{job}" if job else None,
        "endpoint": "videos",
        "sent": {"model": "veo3", "action": "text2video", "prompt": prompt, "resolution": None},
        "at": "2026-01-01T00:00:00+00:00",
        **extra,
    }
    return json.dumps(entry)


def sync_dags(home: Path) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils.session import create_session

    dags = home / "dags"
    dags.mkdir()
    (dags / "videos.py").write_text(f"PROMPTS = {PROMPTS!r}\nBIG = {BIG}\n" + DAG_FILE)
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    try:
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.0 and 3.1: the DagBag in airflow.models
        from airflow.models import dagbag as old

        old_bag = old.DagBag(dag_folder=str(dags), include_examples=False, bundle_path=dags)
        assert not old_bag.import_errors, old_bag.import_errors
        if hasattr(old, "sync_bag_to_db"):  # 3.1
            old.sync_bag_to_db(old_bag, "dags-folder", None)
        else:  # 3.0: the DagBag syncs itself
            old_bag.sync_to_db("dags-folder", None)
        return
    bag = BundleDagBag(dag_folder=str(dags), bundle_path=dags, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


def create_run(session: Any, dag_id: str, run_id: str, now: datetime) -> None:
    """One manual run of ``dag_id`` with its task instances, as ``dag.test()`` makes it."""
    from airflow.utils.types import DagRunTriggeredByType

    args: dict[str, Any] = dict(run_id=run_id, logical_date=None, data_interval=None, run_after=now, conf=None)
    args.update(triggered_by=DagRunTriggeredByType.TEST, start_date=now, session=session)
    try:
        from airflow.models.dagbag import DBDagBag
        from airflow.models.dagrun import get_or_create_dagrun
    except ImportError:  # Airflow 3.0
        from airflow.models.dag import _get_or_create_dagrun
        from airflow.models.dagbag import DagBag

        old_dag = DagBag(read_dags_from_db=True).get_dag(dag_id, session=session)
        assert old_dag is not None, dag_id
        _get_or_create_dagrun(dag=old_dag, **args)
        return
    dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
    assert dag is not None, dag_id
    get_or_create_dagrun(dag=dag, triggering_user_name="tests", **args)


def _uuid7_at(when: Any, n: int) -> uuid.UUID:
    """A UUIDv7 of an earlier time (Airflow's task instance ids are v7: id order is creation order)."""
    ms = int(when.timestamp() * 1000) & ((1 << 48) - 1)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | n)


def fill_bulk(session: Any, files: Path, now: Any) -> None:
    """``BULK`` task instances of ``bulk_dag``, copied from its one real row (10,000 ORM inserts take minutes)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from sqlalchemy import insert, select

    table = TI.__table__
    [first] = session.execute(select(table).where(table.c.dag_id == "bulk_dag")).mappings().all()
    dag_run_id = session.scalar(select(DagRun.id).where(DagRun.dag_id == "bulk_dag"))
    path = str(files / "clip-0.mp4")
    tis, xcoms, rendered = [], [], []
    # Airflow 3.0 keeps the id as text (String(36)), 3.1+ as a UUID.
    for i in range(BULK):
        state = "failed" if i % 10 == 9 else "success"
        start = now - timedelta(seconds=BULK - i)
        ti_id = _uuid7_at(start, i)
        tis.append({**first, "id": str(ti_id) if isinstance(first["id"], str) else ti_id, "map_index": i, "state": state, "try_number": 1,
                    "start_date": start, "end_date": start + timedelta(seconds=1), "duration": 1.0})  # fmt: skip
        job = f"job-bulk-{i}"
        if state == "success":
            value = XComModel.serialize_value(_result(job, f"bulk {i}", path))
            xcoms.append({"dag_run_id": dag_run_id, "task_id": "bulk", "map_index": i, "key": "return_value",
                          "dag_id": "bulk_dag", "run_id": "manual__bulk", "value": value, "timestamp": now})  # fmt: skip
        rendered.append({"dag_id": "bulk_dag", "task_id": "bulk", "run_id": "manual__bulk", "map_index": i,
                         "rendered_fields": {"prompt": f"bulk {i}", "model": "veo3-fast", "output_path": path}})  # fmt: skip
    session.execute(table.delete().where(table.c.dag_id == "bulk_dag"))
    session.execute(insert(table), tis)
    session.execute(insert(XComModel.__table__), xcoms)
    session.execute(insert(RTIF.__table__), rendered)


def store_ledger(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, entry: str) -> None:
    """Keep a ledger entry where the installed Airflow's worker keeps it: the task state store (3.3+),
    else the fallback's Variable (written by Airflow's own ``Variable.set``, encrypted as any Variable)."""
    if compat.HAS_TASK_STATE_STORE:
        from airflow._shared.state import TaskScope
        from airflow.state import get_state_backend

        scope = TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
        get_state_backend().set(scope, LEDGER_KEY, entry, session=session)
        return
    from airflow.models.variable import Variable

    ref = TaskInstanceRef(dag_id, run_id, task_id, map_index)
    envelope = variables.wrap(ref, LEDGER_KEY, json.loads(entry))
    Variable.set(variables.variable_key(ref, LEDGER_KEY), json.dumps(envelope), session=session)


def fill(files: Path) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    now = datetime.now(timezone.utc)
    with create_session() as session:
        for dag_id, run_id in (
            ("videos_dag", "manual__videos"),
            ("big_dag", "manual__big"),
            ("private_dag", "manual__private"),
            ("edited_dag", "manual__edited"),
            ("bulk_dag", "manual__bulk"),
        ):
            create_run(session, dag_id, run_id, now)
        session.flush()
        tis = {(t.dag_id, t.task_id, t.map_index): t for t in session.scalars(select(TI))}

        rendered: dict[tuple[str, str, str, int], dict[str, Any]] = {}

        def done(dag_id: str, run_id: str, task_id: str, index: int, prompt: str, path: str | None, **kw: Any) -> None:
            ti = tis[(dag_id, task_id, index)]
            if kw.get("rendered", path) is not None:  # what the worker rendered (None: pruned by Airflow)
                rendered[(dag_id, run_id, task_id, index)] = {"prompt": prompt, "output_path": kw.get("rendered", path)}
            ti.state, ti.try_number = kw.get("state", "success"), 1
            ti.start_date, ti.end_date, ti.duration = now - timedelta(seconds=75), now - timedelta(seconds=3), 72.0
            job = f"job-{task_id}-{index}"
            if path is not None or kw.get("url"):
                XComModel.set(
                    "return_value", _result(job, prompt, path, kw.get("url")), dag_id=dag_id, task_id=task_id,
                    run_id=run_id, map_index=index, session=session,
                )  # fmt: skip
            store_ledger(session, dag_id, run_id, task_id, index, _ledger(job, prompt, **kw.get("ledger", {})))

        for i, prompt in enumerate(PROMPTS[:2]):
            target = files / f"clip-{i}.mp4"
            shutil.copy(ASSETS / f"clip-{i + 1}-720p.mp4", target)
            done("videos_dag", "manual__videos", "clips", i, prompt, str(target) if i == 0 else f"file://{target}")
        waiting = tis[("videos_dag", "clips", 2)]
        waiting.state, waiting.try_number, waiting.start_date = "deferred", 1, now - timedelta(seconds=90)
        store_ledger(session, "videos_dag", "manual__videos", "clips", 2, _ledger("job-clips-2", PROMPTS[2]))
        XComModel.set("veo_task_id", "job-clips-2", dag_id="videos_dag", task_id="clips", run_id="manual__videos",
                      map_index=2, session=session)  # fmt: skip
        done("videos_dag", "manual__videos", "single", -1, "one clip", None, url="https://cdn.example/only-url.mp4")
        done("videos_dag", "manual__videos", "failed", -1, "refused clip", None, state="failed",
             ledger={"error_code": "content_policy", "error_message": "the prompt was refused"})  # fmt: skip
        for i in range(BIG):
            done("big_dag", "manual__big", "many", i, f"clip {i}", str(files / "clip-0.mp4"))
        done("private_dag", "manual__private", "secret", -1, "private clip", str(files / "gone.mp4"))
        XComModel.set("return_value", {"rows": list(range(1000))}, dag_id="videos_dag", task_id="not_veo",
                      run_id="manual__videos", session=session)  # fmt: skip
        # A user with XCom write access edited this result to name another file; this one's
        # rendered fields are gone (Airflow keeps them for the last N runs only).
        other = files / "other.mp4"
        shutil.copy(ASSET, other)
        done("edited_dag", "manual__edited", "tampered", -1, "edited", str(other), rendered=str(files / "tampered.mp4"))
        done("edited_dag", "manual__edited", "pruned", -1, "pruned", str(other), rendered=None)
        for i, prompt in enumerate(PROMPTS):
            key = ("videos_dag", "manual__videos", "clips", i)
            rendered[key] = {**rendered.get(key, {"prompt": prompt}), "model": "veo3", "aspect_ratio": "9:16"}
        fill_bulk(session, files, now)
        for (dag_id, run_id, task_id, index), fields in rendered.items():
            session.execute(insert(RTIF.__table__).values(
                dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=index, rendered_fields=fields,
            ))  # fmt: skip


#: The seeded home's Fernet key (a fixed, valid one: 32 url-safe base64 bytes).
FERNET_KEY = "dGVzdHMtdWktZmVybmV0LWtleS0wMTIzNDU2Nzg5YWI="

#: Users of Airflow's simple auth manager (password = name, for the browser check's login).
USERS = {"viewer": "viewer", "outsider": "outsider"}


def airflow_env(home: Path) -> dict[str, str]:
    """Airflow settings of a seeded home: per-DAG auth (tests/ui/auth_manager.py), real users."""
    (home / "passwords.json").write_text(json.dumps(USERS))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.auth_manager.OneDagAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:viewer" for u in USERS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "tests-ui-jwt-secret-0123456789abcdef-0123456789abcdef-0123456789",
        # Variables (the ledger's fallback below 3.3) are encrypted, as in a real deployment.
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
    }


def seed(home: Path) -> Path:
    """Migrate, sync the DAGs, fill; the folder of the video files."""
    from airflow.utils.db import initdb

    files = home / "videos"
    files.mkdir(parents=True, exist_ok=True)
    initdb()
    sync_dags(home)
    fill(files)
    return files


if __name__ == "__main__":
    seed(Path(sys.argv[1]))
