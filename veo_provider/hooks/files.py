"""Where a downloaded video lands: a fresh temporary sibling moved into place, capped in size.

No HTTP here (the hook streams); only files, so the target is always whole or absent.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from veo_provider.exceptions import VeoError

__all__ = ["capped", "check_writable", "content_length", "destination", "exactly", "is_local", "write"]

log = logging.getLogger(__name__)


def is_local(target: Any) -> bool:
    """A path on this machine's file system: a ``pathlib.Path`` that is not an object-store path.

    universal-pathlib 0.2 (Airflow 3.0 and 3.1) makes every ``ObjectStoragePath`` a ``Path``
    subclass too; what tells them apart is the filesystem an object-store path carries.
    """
    return isinstance(target, Path) and not hasattr(target, "fs")


def destination(destination: Any) -> tuple[Any, str]:
    """(where to write, what to report): a local Path (its directory made) or an object-store path."""
    if isinstance(destination, str) and "://" in destination and not destination.startswith("file://"):
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        destination = ObjectStoragePath(destination)
    elif isinstance(destination, str):
        destination = Path(destination.removeprefix("file://"))
    shown = str(destination)
    if not hasattr(destination, "fs"):
        destination = Path(destination)
    elif getattr(destination, "protocol", "file") in ("file", "local"):
        destination = Path(destination.path)  # local: written with O_EXCL, see _write_local
    # Object stores have no directories (and creating one may try to create a bucket).
    if is_local(destination):
        destination.parent.mkdir(parents=True, exist_ok=True)
    return destination, shown


def check_writable(output_path: Any) -> None:
    """Refuse, before anything is paid, an ``output_path`` the video could never be written to.

    A local folder must be creatable and writable (probed with a file created and removed); an
    object-store URL needs a filesystem registered for its scheme (e.g. its provider installed).
    """
    if not isinstance(output_path, str | os.PathLike):
        raise ValueError(f"output_path must be a path or URL string (got a {type(output_path).__name__})")
    shown = str(output_path)
    if not shown.strip() or shown.rstrip().endswith(("/", "\\")):
        raise ValueError(f"output_path {shown!r} names no file: end it with the video's file name, e.g. .../clip.mp4")
    try:
        target, shown = destination(output_path)
        if is_local(target) and target.is_dir():
            raise ValueError("it is an existing folder; name the video file inside it, e.g. .../clip.mp4")
        if is_local(target):
            probe = target.with_name(f".{target.name}.{uuid.uuid4().hex}.probe")
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
            probe.unlink()
        else:
            target.fs  # noqa: B018 - resolving it raises when no filesystem serves the scheme
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"output_path {shown!r} cannot be written ({exc}): use a writable local path or file:// URL, "
            "or an object-store URL whose filesystem is available (e.g. s3:// with the Amazon provider installed)"
        ) from None


def exactly(chunks: Iterable[bytes], declared: int | None, short: Callable[[int, int], Exception]) -> Iterator[bytes]:
    """The chunks, failing at the end when fewer (or more) bytes came than the answer declared."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        yield chunk
    if declared is not None and total != declared:
        raise short(total, declared)


def content_length(headers: Any) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def capped(chunks: Iterable[bytes], limit: int, too_large: Callable[[int, bool], VeoError]) -> Iterator[bytes]:
    """The chunks, stopped once they pass ``limit`` bytes (a missing or lying Content-Length)."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large(total, True)
        yield chunk


def write(target: Any, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``target`` (a local Path or an object-store path) all or nothing."""
    if is_local(target):
        _write_local(target, chunks)
    else:
        _write_remote(target, chunks)


def _write_local(target: Path, chunks: Iterable[bytes]) -> None:
    """Write to a new hidden sibling, then rename it over the target: the target is whole or absent.

    O_CREAT|O_EXCL makes the file ours alone: never a planted symlink (O_EXCL refuses those too),
    never another writer's temporary file. O_NOFOLLOW guards the last path component only: a
    symlinked parent directory is followed (docs/exactly-once.md says so).
    """
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before it takes the target's name (power loss)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def _write_remote(target: ObjectStoragePath, chunks: Iterable[bytes]) -> None:
    """Write to a unique temporary key beside the target, then move it into place."""
    tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
    try:
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        tmp.rename(target)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Any) -> None:
    try:
        path.unlink(missing_ok=True)
    except Exception:  # pragma: no cover - cleanup must never hide the real error
        log.warning("Could not remove partial download %s", path)
