"""Read-only queries on the campaign cluster's metadata database.

The campaign reads task states, XComs, ledgers and trigger assignments from PostgreSQL rather than
through the REST API: the api-server is one of the things it restarts, and polling it for hundreds
of tasks would cost the 2-core machine more than the tasks themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

from tests.reliability.campaign.verify import loads
from veo_provider.testing.cluster import PG_HOST, PG_PORT, PG_USER

__all__ = ["Db", "TiRow"]

TASK_ID = "generate"


class TiRow(NamedTuple):
    run_id: str
    map_index: int
    id: str
    state: str | None
    try_number: int
    trigger_id: int | None


class Db:
    """One autocommit connection per thread (psycopg2 connections are not shared across threads)."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self._local = threading.local()

    def rows(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = getattr(self._local, "conn", None)
        for attempt in range(2):
            if conn is None or conn.closed:
                conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=self.dbname, connect_timeout=5)
                conn.autocommit = True
                self._local.conn = conn
            try:
                with conn.cursor() as cur:
                    cur.execute(query, params)
                    return list(cur.fetchall())
            except psycopg2.OperationalError:
                conn.close()
                conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------------------ queries

    def tis(self, run_ids: Iterable[str]) -> dict[tuple[str, int], TiRow]:
        """The current task instances of these runs, by (run_id, map_index)."""
        ids = list(run_ids)
        if not ids:
            return {}
        found = self.rows(
            "SELECT run_id, map_index, id::text, state, try_number, trigger_id FROM task_instance "
            "WHERE task_id = %s AND run_id = ANY(%s)",
            (TASK_ID, ids),
        )
        return {(r[0], r[1]): TiRow(*r) for r in found}

    def run_states(self, run_ids: Iterable[str]) -> dict[str, str]:
        ids = list(run_ids)
        if not ids:
            return {}
        return dict(self.rows("SELECT run_id, state FROM dag_run WHERE run_id = ANY(%s)", (ids,)))  # type: ignore[arg-type]

    def xcoms(self, run_id: str) -> dict[int, Any]:
        found = self.rows(
            "SELECT map_index, value FROM xcom WHERE run_id = %s AND task_id = %s AND key = 'return_value'",
            (run_id, TASK_ID),
        )
        return {r[0]: loads(r[1]) for r in found}

    def ledgers(self, run_id: str, key: str = "veo_submission") -> dict[int, Any]:
        found = self.rows(
            "SELECT map_index, value FROM task_state_store WHERE run_id = %s AND task_id = %s AND key = %s",
            (run_id, TASK_ID, key),
        )
        return {r[0]: loads(r[1]) for r in found}

    def state_mismatches(self, run_id: str) -> dict[int, int]:
        """Tries the scheduler failed as "state changed externally" (Airflow's resume race, a dead worker)."""
        found = self.rows(
            "SELECT map_index, count(*) FROM log WHERE run_id = %s AND task_id = %s AND event = 'state mismatch' "
            "GROUP BY map_index",
            (run_id, TASK_ID),
        )
        return {r[0]: r[1] for r in found}

    def trigger_holders(self, run_id: str) -> dict[int | None, int]:
        """How many of the run's waiting triggers each triggerer job holds (None: unassigned)."""
        found = self.rows(
            "SELECT t.triggerer_id, count(*) FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.run_id = %s AND ti.task_id = %s GROUP BY t.triggerer_id",
            (run_id, TASK_ID),
        )
        return {r[0]: r[1] for r in found}

    def triggers_held_by(self, triggerer_id: int) -> int:
        return self.rows("SELECT count(*) FROM trigger WHERE triggerer_id = %s", (triggerer_id,))[0][0]
