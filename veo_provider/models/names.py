"""The names a DAG file needs while it is parsed: the operator's request arguments and the known models.

Plain tuples and sets (no pydantic): the operator's ``template_fields`` and the decorator read
them when a DAG file is parsed, and parsing must not build the request models.
"""

from __future__ import annotations

__all__ = ["KNOWN_MODELS", "REQUEST_ARGUMENTS"]

#: Models the API documents (old guide + current spec). Other names are sent as given, so a
#: model released tomorrow works today; they must look like a model name (lowercase, digits,
#: ``-``, ``.``, ``_``) so that a typo such as ``"Veo 3"`` is caught before paying.
KNOWN_MODELS: frozenset[str] = frozenset(
    {"veo2", "veo2-fast", "veo3", "veo3-fast", "veo31", "veo31-fast", "veo31-fast-ingredients"}
)

#: Operator arguments that are request fields (the rest say how to wait and where to write).
REQUEST_ARGUMENTS = (
    "action",
    "model",
    "prompt",
    "image_urls",
    "video_id",
    "resolution",
    "aspect_ratio",
    "translation",
    "motion_type",
    "image_mask",
)
