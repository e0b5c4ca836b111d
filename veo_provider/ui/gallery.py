"""The "Veo videos" page: the Veo task instances of every DAG a user may read, newest first, a page at a time.

Keyset pagination over the task instance's primary key (a UUIDv7, so newest first is id order,
and "the page after" is ``id < cursor``): a page costs the same at row 10 and at row 10,000,
and is read in a constant number of queries (the page, then its XComs, ledger entries and
rendered fields: see ``store.facts_of``). Only DAGs in ``readable`` are ever queried, so a
user who may not read a DAG sees nothing of it, not even a count.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String, and_, or_, select, type_coerce

from veo_provider.ui.store import TI_COLUMNS, facts_of, where_keys
from veo_provider.ui.videos import TaskInstanceFacts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["PAGE_MAX", "GalleryQuery", "dags_with_videos", "gallery_page"]

#: The largest page a request may ask for.
PAGE_MAX = 100
#: How the Veo operators are recorded on a task instance (``operator`` / ``custom_operator_name``).
_OPERATORS = ("VeoOperator", "_VeoDecoratedOperator")
_CUSTOM_NAMES = ("@task.veo",)


@dataclass(frozen=True)
class GalleryQuery:
    """What the page asks for; every filter is optional."""

    dag_id: str | None = None
    states: Sequence[str] = ()
    model: str | None = None
    #: Started at or after ``since``, before ``until``.
    since: datetime | None = None
    until: datetime | None = None
    #: The last task instance id of the previous page (its ``next_cursor``).
    cursor: str | None = None
    limit: int = 24


def _veo(ti: Any) -> Any:
    return or_(ti.operator.in_(_OPERATORS), ti.custom_operator_name.in_(_CUSTOM_NAMES))


def parse_cursor(cursor: str) -> uuid.UUID:
    """The cursor as the id it is; ``ValueError`` naming the field otherwise."""
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise ValueError(f"cursor {cursor!r} is not a page cursor: pass the next_cursor of the previous page") from None


def _id_value(ti: Any, cursor: uuid.UUID) -> Any:
    """The cursor as the id column takes it: a UUID, or its text where the column is text (Airflow
    3.0's ``String(36)``, a text ``UUID`` on PostgreSQL; canonical lowercase text sorts as the UUIDs do)."""
    column_type = ti.id.type
    default = getattr(column_type, "impl", column_type)  # SQLAlchemy 1.4 wraps it in a Variant
    return str(cursor) if isinstance(default, String) else cursor


def _filters(ti: Any, q: GalleryQuery, readable: Collection[str]) -> list[Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF

    clauses = [ti.dag_id.in_(sorted(readable)), _veo(ti)]
    if q.dag_id is not None:
        clauses.append(ti.dag_id == q.dag_id)
    if q.states:
        clauses.append(ti.state.in_(list(q.states)))
    if q.since is not None:
        clauses.append(ti.start_date >= q.since)
    if q.until is not None:
        clauses.append(ti.start_date < q.until)
    if q.cursor is not None:
        clauses.append(ti.id < _id_value(ti, parse_cursor(q.cursor)))
    if q.model is not None:
        # The model the task rendered (written when it started, kept for the last N runs of a task).
        rendered = select(RTIF.task_id).where(
            and_(
                RTIF.dag_id == ti.dag_id,
                RTIF.run_id == ti.run_id,
                RTIF.task_id == ti.task_id,
                RTIF.map_index == ti.map_index,
                # As JSON whatever the column's own type (3.0 declares it sqlalchemy_jsonfield's).
                type_coerce(RTIF.rendered_fields, JSON)["model"].as_string() == q.model,
            )
        )
        clauses.append(rendered.exists())
    return clauses


def gallery_page(
    session: Session, readable: Collection[str], q: GalleryQuery
) -> tuple[list[TaskInstanceFacts], str | None]:
    """One page of videos, newest first, and the cursor of the next page (None: this is the last)."""
    from airflow.models.taskinstance import TaskInstance as TI

    if not readable:
        return [], None
    limit = max(1, min(q.limit, PAGE_MAX))
    rows = session.execute(
        select(TI.id, *(getattr(TI, c) for c in TI_COLUMNS))
        .where(*_filters(TI, q, readable))
        .order_by(TI.id.desc())
        .limit(limit + 1)
    ).all()
    more, rows = len(rows) > limit, rows[:limit]
    if not rows:
        return [], None
    keys = [(r.dag_id, r.run_id, r.task_id, r.map_index) for r in rows]
    facts = facts_of(session, rows, where_keys(keys))
    return facts, str(rows[-1].id) if more else None


def dags_with_videos(session: Session, readable: Collection[str]) -> list[str]:
    """The readable DAGs that have Veo task instances (for the page's DAG filter)."""
    from airflow.models.taskinstance import TaskInstance as TI

    if not readable:
        return []
    rows = session.scalars(select(TI.dag_id).where(TI.dag_id.in_(sorted(readable)), _veo(TI)).distinct())
    return sorted(rows)
