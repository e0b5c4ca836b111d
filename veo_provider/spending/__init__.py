"""The spending cap: paid submissions per connection per UTC day, and per DAG run.

``rules`` (what counts, grant or refuse), ``credential`` (the worker's signed request),
``counter`` (the count in the metadata database), ``route`` (``POST /veo/quota`` in the
api-server) and ``client`` (the worker's reserve/release). See docs/spending-cap.md.
"""

from __future__ import annotations

from veo_provider.exceptions import SpendingCapError, SpendingCapMisconfigured
from veo_provider.spending.client import release, reserve
from veo_provider.spending.rules import (
    CAP_NAMES,
    COUNTER_PREFIX,
    CapDecision,
    CapRequest,
    Scope,
    caps,
    check_limit,
    refusal_message,
    scopes_of,
)

__all__ = [
    "CAP_NAMES",
    "COUNTER_PREFIX",
    "CapDecision",
    "CapRequest",
    "Scope",
    "SpendingCapError",
    "SpendingCapMisconfigured",
    "caps",
    "check_limit",
    "refusal_message",
    "release",
    "reserve",
    "scopes_of",
]
