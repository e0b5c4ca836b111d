"""MkDocs hook: tables generated from the code, so the docs cannot drift from it.

``<!-- veo:extras -->`` in a page becomes the table of every extra of the ``veo`` connection,
read from ``veo_provider.settings.EXTRAS`` (the same table that builds the connection form and
parses the extras); ``<!-- veo:xcom -->`` the keys of the XCom result, read from
``veo_provider.models.records.XCOM_KEYS``. A page that asks for an unknown table fails the build.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(r"<!--\s*veo:([a-z-]+)\s*-->")


def _cell(text: str) -> str:
    """One Markdown table cell (no pipes or newlines to break the row)."""
    return " ".join(text.split()).replace("|", "\\|")


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if schema.get("format") == "password":
        return "secret string"
    if schema.get("format") == "url":
        return "URL"
    types = [t for t in schema.get("type", []) if t != "null"]
    kind = " or ".join(types) or "value"
    if "minimum" in schema:
        kind += f", ≥ {schema['minimum']}"
    return kind


def extras_table() -> str:
    from veo_provider.settings import EXTRAS

    rows = ["| extra | default | type | meaning (and the field's label in the connection form) |", "|---|---|---|---|"]
    for name, extra in EXTRAS.items():
        default = "\N{EN DASH}" if extra.default is None else f"`{extra.default}`"
        meaning = f"{extra.description} " if extra.description else ""
        meaning += f"Form: *{extra.label}*."
        rows.append(f"| `{name}` | {default} | {_cell(_kind(extra.schema))} | {_cell(meaning)} |")
    return "\n".join(rows)


#: What each key of the XCom result means; a key the code adds without a meaning here fails the build.
XCOM_MEANINGS = {
    "task_id": "the Veo job id (the API's `task_id`; pass it to `VeoSensor` as `veo_task_id`)",
    "video_id": "`data[].id` of the video: the `video_id` of a later `get1080p`, `upsample`, `extend`, "
    "`reshoot` or `objects` step",
    "video_url": "the video's URL as the API reported it",
    "state": "the job's state: `succeeded` when the task waited; with `wait_for_completion=False`, the state "
    "right after submission",
    "trace_id": "the API's trace id (quote it to AceData Cloud support)",
    "created_at": "when the API created the video",
    "complete_at": "when the API finished the video",
    "model": "the model that was sent",
    "action": "the action that was sent (the default included)",
    "prompt": "the prompt that was sent",
    "resolution": "the resolution that was sent (empty: the API's default, 720p)",
    "output_path": "where the video was written; empty when no `output_path` was given",
}


def xcom_table() -> str:
    from veo_provider.models.records import XCOM_KEYS

    missing = [key for key in XCOM_KEYS if key not in XCOM_MEANINGS]
    if missing:
        raise ValueError(f"docs/_hooks/veo_docs.py: describe the new XCom key(s) {missing} in XCOM_MEANINGS")
    rows = ["| key | meaning |", "|---|---|"]
    rows += [f"| `{key}` | {_cell(XCOM_MEANINGS[key])} |" for key in XCOM_KEYS]
    return "\n".join(rows)


TABLES = {"extras": extras_table, "xcom": xcom_table}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"{page.file.src_path}: unknown generated table <!-- veo:{name} -->")
        return TABLES[name]()

    return MARKER.sub(table, markdown)
