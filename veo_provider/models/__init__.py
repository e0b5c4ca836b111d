"""The Veo API's shapes, defined once: requests, answers, and what crosses processes.

``from veo_provider.models import X`` keeps working for every public name; the rooms are
``requests`` (what we send), ``responses`` (what the API answers, the state mapping) and
``records`` (XCom result, trigger event, ledger entry, stored callback).
"""

from __future__ import annotations

from veo_provider.models.records import XCOM_KEYS, LedgerEntry, StoredCallback, VeoEvent, result_to_xcom
from veo_provider.models.requests import (
    ACTION_ALIASES,
    ENDPOINTS,
    GET_1080P,
    KNOWN_MODELS,
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
