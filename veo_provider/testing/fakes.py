"""In-memory stand-ins for what Airflow hands a running task, to unit-test operators without a database.

``VeoOperator(...).execute({"task_state_store": FakeStore(), "ti": RecordingTI()})`` runs the
operator's whole submission path against a mocked API (respx) or the emulator.
"""

from __future__ import annotations

from typing import Any


class FakeStore:
    """The task state store's interface, in memory (as Airflow keeps it across tries); records writes."""

    def __init__(self, **values: Any) -> None:
        self.values: dict[str, Any] = dict(values)
        self.writes: list[tuple[str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.writes.append((key, value))
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class RecordingTI:
    """A task instance's identity and ``xcom_push``, recording what was pushed."""

    def __init__(self, dag_id: str = "d", run_id: str = "r", task_id: str = "veo", map_index: int = -1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, map_index
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value
