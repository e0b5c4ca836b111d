"""The Veo API's answers as literal JSON, for tests that mock it (respx) instead of running the emulator.

Written from the vendor's documentation, not built by the provider's models: code tested against
these checks the models against an independent copy of the shapes. The dicts are shared; a test
that needs a variant builds one (``{**DONE, "trace_id": "x"}``) or deep-copies first.
"""

from __future__ import annotations

from typing import Any

TASK_ID = "t-1"
VIDEO_ID = "v-1"
VIDEO_URL = "https://cdn.example/v-1.mp4"

#: A finished job's answer: a synchronous submission's reply and a status record's ``response``.
DONE: dict[str, Any] = {
    "success": True,
    "task_id": TASK_ID,
    "trace_id": "tr-1",
    "data": [
        {
            "id": VIDEO_ID,
            "video_url": VIDEO_URL,
            "state": "succeeded",
            "created_at": "2025-07-25 16:07:43",
            "complete_at": "2025-07-25 16:10:28",
        }
    ],
}

#: The reply to an asynchronous submission: the job's id, nothing paid for yet is known.
SUBMITTED: dict[str, Any] = {"task_id": TASK_ID}


def record(response: dict[str, Any] | None = None, task_id: str = TASK_ID, **fields: Any) -> dict[str, Any]:
    """One item of ``POST /veo/tasks``: the job's id and, once the API has one, its latest answer."""
    item: dict[str, Any] = {"id": task_id, **fields}
    if response is not None:
        item["response"] = response
    return item


#: ``POST /veo/tasks`` records of a job still generating, finished, and failed at the API.
RUNNING = record({"success": True, "task_id": TASK_ID, "data": [{"state": "running"}]})
RECORD_DONE = record(DONE)
FAILED = record({"success": False, "task_id": TASK_ID, "error": {"code": "x", "message": "y"}})
