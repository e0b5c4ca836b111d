"""The spending cap: paid submissions per connection per UTC day, and per DAG run.

``rules`` (what counts, grant or refuse), ``credential`` (the worker's signed request),
``counter`` (the count in the metadata database), ``route`` (``POST /veo/quota`` in the
api-server) and ``client`` (the worker's reserve/release). See docs/spending-cap.md. ``limits``
checks a cap's value when a DAG file is parsed; the other names load their room on first use
(PEP 562), so parsing builds none of the request models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from veo_provider.lazy import lazy_names

if TYPE_CHECKING:
    from veo_provider.exceptions import SpendingCapError, SpendingCapMisconfigured
    from veo_provider.spending.client import release, reserve
    from veo_provider.spending.limits import check_limit
    from veo_provider.spending.rules import (
        CAP_NAMES,
        COUNTER_PREFIX,
        CapDecision,
        CapRequest,
        Scope,
        caps,
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


#: Each public name and the module that defines it.
_ROOMS = {
    **dict.fromkeys(("SpendingCapError", "SpendingCapMisconfigured"), "veo_provider.exceptions"),
    **dict.fromkeys(("release", "reserve"), "veo_provider.spending.client"),
    **dict.fromkeys(("check_limit",), "veo_provider.spending.limits"),
    **dict.fromkeys(
        ("CAP_NAMES", "COUNTER_PREFIX", "CapDecision", "CapRequest", "Scope", "caps", "refusal_message", "scopes_of"),
        "veo_provider.spending.rules",
    ),
}


__getattr__ = lazy_names(__name__, globals(), _ROOMS)
