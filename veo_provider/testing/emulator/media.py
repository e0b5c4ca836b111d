"""The videos the Veo API emulator serves: small playable MP4s, one picture per job, padded to any size on the fly.

Each new video gets the next of ``PICTURES`` pictures (its own colour and number), so the videos
of consecutive jobs differ; an upscale (``/veo/upsample``, the 1080p fetch) keeps its source's
picture at a larger frame (1920x1080, 3840x2160 against the 1280x720 original). The clips of one
resolution all have one length, so a download's size depends on the resolution only.
``tools/make_emulator_clips.py`` made them.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "PICTURES",
    "RESOLUTIONS",
    "CutBody",
    "clip_mp4",
    "delivered_resolution",
    "iter_mp4",
    "mp4_length",
    "sample_mp4",
]

_CHUNK = 64 * 1024
#: Distinct pictures of the clips (``assets/clip-N-RESOLUTION.mp4``, N from 1).
PICTURES = 6
#: The resolutions a clip comes in: the generated 720p and the two upscales.
RESOLUTIONS = ("720p", "1080p", "4k")
_GET_1080P = frozenset({"get1080p", "get_1080p"})


@functools.cache
def clip_mp4(picture: int = 0, resolution: str = "720p") -> bytes:
    """The clip of ``picture`` (any int: taken modulo ``PICTURES``) at ``resolution``."""
    from importlib.resources import files

    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution {resolution!r} is not one of {', '.join(RESOLUTIONS)}")
    name = f"clip-{picture % PICTURES + 1}-{resolution}.mp4"
    return (files("veo_provider.testing") / "assets" / name).read_bytes()


def sample_mp4() -> bytes:
    """The first picture at 720p: as long as every generated (720p) video the emulator serves."""
    return clip_mp4(0, "720p")


def delivered_resolution(endpoint: str, body: Mapping[str, Any]) -> str:
    """The resolution the API delivers for a submission: 720p unless it asks for more."""
    action, asked = body.get("action"), body.get("resolution")
    if endpoint == "upsample" and action in ("1080p", "4k"):
        return str(action)
    if endpoint == "videos" and action in _GET_1080P:
        return "1080p"
    if asked in ("1080p", "4k") and endpoint in ("videos", "extend"):
        return str(asked)
    return "720p"


def mp4_length(sample_len: int, size: int | None) -> int:
    """Served length for a requested size: too small for a ``free`` box → the plain sample."""
    if size is None or size < sample_len + 8:
        return sample_len
    return size


def _free_box_header(box_size: int) -> bytes:
    if box_size <= 0xFFFFFFFF:
        return struct.pack(">I4s", box_size, b"free")
    return struct.pack(">I4sQ", 1, b"free", box_size)  # 64-bit "largesize" form


def iter_mp4(sample: bytes, size: int | None = None, chunk: int = _CHUNK) -> Iterator[bytes]:
    """Yield a valid MP4 of ``mp4_length`` bytes: the sample + one top-level ``free`` box.

    A generator, so a multi-gigabyte body never sits in memory.
    """
    total = mp4_length(len(sample), size)
    yield sample
    box = total - len(sample)
    if box <= 0:
        return
    header = _free_box_header(box)
    yield header
    remaining = box - len(header)
    zeros = bytes(chunk)
    while remaining > 0:
        n = min(chunk, remaining)
        yield zeros if n == chunk else zeros[:n]
        remaining -= n


class CutBody:
    """Starts an MP4 answer and stops after ``limit`` bytes, leaving the connection to close."""

    def __init__(self, chunks: Iterator[bytes], total: int, limit: int):
        self.chunks, self.total, self.limit = chunks, total, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"video/mp4"), (b"content-length", str(self.total).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        for chunk in self.chunks:
            part = chunk[: self.limit - sent]
            if part:
                await send({"type": "http.response.body", "body": part, "more_body": True})
                sent += len(part)
            if sent >= self.limit:
                break
        # Returning without the final body message: uvicorn closes the connection mid-body.
