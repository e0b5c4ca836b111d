"""The videos the Veo API emulator serves: a small playable MP4, padded to any size on the fly."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

__all__ = ["CutBody", "iter_mp4", "mp4_length", "sample_mp4"]

_CHUNK = 64 * 1024


def sample_mp4() -> bytes:
    """The small, playable MP4 every job "generates" (packaged with the provider)."""
    from importlib.resources import files

    return (files("veo_provider.testing") / "assets" / "sample.mp4").read_bytes()


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
