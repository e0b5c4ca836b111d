"""The Veo API's shapes, defined once: requests, answers, and what crosses processes.

``from veo_provider.models import X`` keeps working for every public name; the rooms are
``requests`` (what we send), ``responses`` (what the API answers, the state mapping) and
``records`` (XCom result, trigger event, ledger entry, stored callback); ``names`` holds the
plain names a DAG file needs while it is parsed. The three rooms build pydantic models when
imported, so a name is imported from its room on first use (PEP 562): parsing a DAG file that
imports the operator does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from veo_provider.lazy import lazy_names

if TYPE_CHECKING:
    from veo_provider.models.names import KNOWN_MODELS
    from veo_provider.models.records import XCOM_KEYS, LedgerEntry, StoredCallback, VeoEvent, result_to_xcom
    from veo_provider.models.requests import (
        ACTION_ALIASES,
        ENDPOINTS,
        GET_1080P,
        MOTION_TYPES,
        ExtendRequest,
        ObjectsRequest,
        ReshootRequest,
        UpsampleRequest,
        VeoRequest,
        VeoRequestError,
        VideosRequest,
        build_request,
    )
    from veo_provider.models.responses import (
        Submission,
        TaskBatch,
        TaskRecord,
        TaskState,
        TaskStatus,
        VeoResult,
        VideoItem,
        decide_state,
    )

__all__ = [
    "ACTION_ALIASES",
    "ENDPOINTS",
    "GET_1080P",
    "KNOWN_MODELS",
    "MOTION_TYPES",
    "XCOM_KEYS",
    "ExtendRequest",
    "LedgerEntry",
    "ObjectsRequest",
    "ReshootRequest",
    "StoredCallback",
    "Submission",
    "TaskBatch",
    "TaskRecord",
    "TaskState",
    "TaskStatus",
    "UpsampleRequest",
    "VeoEvent",
    "VeoRequest",
    "VeoRequestError",
    "VeoResult",
    "VideoItem",
    "VideosRequest",
    "build_request",
    "decide_state",
    "result_to_xcom",
]


#: Each public name and the room that defines it.
_ROOMS = {
    **dict.fromkeys(("XCOM_KEYS", "LedgerEntry", "StoredCallback", "VeoEvent", "result_to_xcom"), "records"),
    **dict.fromkeys(("KNOWN_MODELS",), "names"),
    **dict.fromkeys(
        (
            "ACTION_ALIASES",
            "ENDPOINTS",
            "GET_1080P",
            "MOTION_TYPES",
            "ExtendRequest",
            "ObjectsRequest",
            "ReshootRequest",
            "UpsampleRequest",
            "VeoRequest",
            "VeoRequestError",
            "VideosRequest",
            "build_request",
        ),
        "requests",
    ),
    **dict.fromkeys(
        ("Submission", "TaskBatch", "TaskRecord", "TaskState", "TaskStatus", "VeoResult", "VideoItem", "decide_state"),
        "responses",
    ),
}


__getattr__ = lazy_names(__name__, globals(), {name: f"{__name__}.{room}" for name, room in _ROOMS.items()})
