"""Serves one stored video with HTTP Range, so a browser's player can seek and load metadata only.

The path comes from Airflow's records of the task instance (see ``store.recorded_output``), and
is opened through ``ObjectStoragePath``, so a worker's shared disk and any object store serve alike.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from typing import Any

from fastapi import HTTPException
from fastapi.responses import Response, StreamingResponse

__all__ = ["CHUNK", "open_recorded", "parse_range", "stream"]

#: Bytes read per chunk: small enough that a seek does not read much past what was asked.
CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, None for the whole file; 416 when none of it exists.

    Multi-range requests are answered with the whole file (a server may ignore Range).
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(416, "requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})


def open_recorded(output_path: str) -> Any:
    """The recorded path as an ObjectStoragePath (a plain local path is a ``file://`` URL)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    url = output_path if "://" in output_path else "file://" + output_path
    return ObjectStoragePath(url)


def content_type(path: Any) -> str | None:
    """The file's media type when it is one a player shows (video, GIF); None for anything else."""
    guessed, _ = mimetypes.guess_type(str(getattr(path, "name", path)))
    return guessed if guessed and (guessed.startswith("video/") or guessed == "image/gif") else None


def _chunks(path: Any, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def stream(path: Any, range_header: str | None, method: str = "GET") -> Response:
    """200 with the whole file or 206 with the asked range; 404 when the file is gone."""
    try:
        size = int(path.stat().st_size)
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPException(404, "the video file recorded for this task instance is not there any more") from None
    except OSError as exc:
        raise HTTPException(502, f"the video file cannot be read from its store ({type(exc).__name__})") from None
    span = parse_range(range_header, size)
    start, end = span if span is not None else (0, size - 1)
    length = max(end - start + 1, 0)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=300",
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    status = 206 if span is not None else 200
    media = content_type(path)
    if media is None:
        # Served from Airflow's own origin: anything but a video (an .html output_path, say) is
        # downloaded, never rendered, so it cannot run script with the viewer's session.
        media = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    if method == "HEAD" or length == 0:
        return Response(status_code=status, headers=headers, media_type=media)
    return StreamingResponse(_chunks(path, start, length), status_code=status, headers=headers, media_type=media)
