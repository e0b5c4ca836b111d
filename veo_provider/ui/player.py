"""The player page of one Veo task instance: a small self-contained HTML page, no script, no external asset.

Pure: it renders the ``VideoView`` the Videos tab's card is built from (``videos.video_view``),
so the page and the card show the same facts. It needs no ``react_apps``: on every Airflow 3.x
the extra link opens it. Every value is HTML-escaped; the Content-Security-Policy allows only
this page's one style block and media from the api-server itself.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from veo_provider.ui.videos import VideoView

__all__ = ["CSP", "HEADERS", "render_player"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:60rem;padding:0 1rem;"
    "color:#1a202c;background:#fff}"
    "video{width:100%;max-height:70vh;background:#000}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere;white-space:pre-wrap}"
    ".note{padding:.6rem;border:1px solid #cbd5e0}"
    "@media (prefers-color-scheme:dark){body{color:#e2e8f0;background:#1a202c}}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

#: No script at all; the one style block by its hash; media only from the api-server itself.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; media-src 'self'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-store",
}


def _elapsed(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _player(view: VideoView) -> str:
    """The video, or why there is none (the vendor URL only when nothing was stored)."""
    if view.stream_url:
        return f'<video controls preload="metadata" src="{escape(view.stream_url)}"></video>'
    if view.video_url:
        return (
            '<p class="note">Nothing was stored for this task instance: the vendor\'s '
            f'<a href="{escape(view.video_url)}" rel="noopener noreferrer">video URL</a> expires at its side.</p>'
        )
    if view.waiting:
        return '<p class="note">The Veo job has not finished yet: reload this page later.</p>'
    return '<p class="note">This task instance has no video.</p>'


def _facts(view: VideoView) -> list[tuple[str, str | None]]:
    failure = f"{view.error_code or ''} {view.error_message or ''}".strip() or None
    return [
        ("Prompt", view.prompt),
        ("Model", view.model),
        ("Action", view.action),
        ("Resolution", view.resolution),
        ("Aspect ratio", view.aspect_ratio),
        ("State", view.state),
        ("Waited" if view.waiting else "Elapsed", _elapsed(view.elapsed_seconds)),
        ("Veo job id", view.veo_task_id),
        ("Trace id", view.trace_id),
        ("Written to", view.output_path),
        ("Failure", failure),
    ]


def render_player(view: VideoView, task_instance_url: str) -> str:
    """The page; ``task_instance_url`` links back to the task instance in Airflow's UI."""
    where = f"{view.dag_id} / {view.run_id} / {view.task_id}" + (f" [{view.map_index}]" if view.map_index >= 0 else "")
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in _facts(view) if v)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Veo video: {escape(where)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Veo video</h1><p>{escape(where)} "
        f'(<a href="{escape(task_instance_url)}">task instance in Airflow</a>)</p>'
        f"{_player(view)}<dl>{rows}</dl></body></html>"
    )
