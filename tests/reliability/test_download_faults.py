"""Download faults: no file ever appears at ``output_path`` unless it is complete.

Against the real emulator (its ``download_cut`` fault closes the connection mid-body, a real
socket) and respx (bodies no real server sends): truncated bodies, connections dropped
mid-stream, HTML or JSON answered with 200, videos beyond the ``max_download_mb`` cap, and a
full disk. After every failure the target is absent (or still the previous whole file) and no
temporary file is left beside it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException

from tests.support import SECRET_TOKEN, Chunks, op
from veo_provider.exceptions import VeoDownloadTooLarge, VeoError, VeoTransportError
from veo_provider.hooks import files
from veo_provider.hooks.veo import VeoHook
from veo_provider.ledger import LEDGER_KEY
from veo_provider.testing.fakes import FakeStore

MB = 1024 * 1024
CDN = "https://cdn.example/v.mp4"
#: A video spanning several of the hook's 1 MiB read chunks.
SIZE = 3 * MB + 12345
PREVIOUS = b"the previous, whole video"


def listing(directory: Path) -> list[str]:
    """Every entry, hidden ones too (temporary files start with a dot)."""
    return sorted(p.name for p in directory.iterdir())


def fast_hook() -> VeoHook:
    return VeoHook(retry_wait_initial=0.01, retry_wait_max=0.02)


@pytest.fixture
def emulator_conn(veo_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point ``veo_default`` at the emulator, with connection extras."""

    def _set(**extra: Any) -> None:
        conn = {"conn_type": "veo", "host": veo_emulator.url, "password": veo_emulator.token, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_VEO_DEFAULT", json.dumps(conn))

    _set(max_retries=2)
    return _set


@pytest.fixture
def video_url(veo_emulator: Any, emulator_conn: Any) -> str:
    """The URL of a finished job's video at the emulator (no ``?size=``: see ``sized``)."""
    r = httpx.post(
        f"{veo_emulator.url}/veo/videos",
        json={"action": "text2video", "model": "veo2", "prompt": "a mug on a marble counter"},
        headers=veo_emulator.headers,
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["data"][0]["video_url"]


def sized(url: str, size: int = SIZE) -> str:
    return f"{url}?size={size}"


def whole(url: str) -> bytes:
    return httpx.get(url, timeout=10).content


pytestmark = pytest.mark.veo_emulator(generation_seconds=0)


# -------------------------------------------------------------- connection cut (real socket)


@pytest.mark.parametrize("after", [0, 1, MB - 1, MB, MB + 1, SIZE // 2, SIZE - 1])
def test_a_connection_cut_mid_body_leaves_no_file(
    veo_emulator: Any, video_url: str, tmp_path: Path, after: int
) -> None:
    veo_emulator.set_faults(download_cut={"times": None, "after_bytes": after})
    target = tmp_path / "v.mp4"
    with pytest.raises(VeoTransportError) as info:
        fast_hook().download(sized(video_url), target)
    assert "RemoteProtocolError" in str(info.value) and info.value.retryable
    assert listing(tmp_path) == [], "neither the target nor a temporary file"
    assert veo_emulator.stats()["downloads_cut"] == 2, "retried (max_retries=2), every attempt cut"


def test_a_cut_keeps_the_previous_file_and_a_retry_completes(veo_emulator: Any, video_url: str, tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(PREVIOUS)
    veo_emulator.set_faults(download_cut={"times": 2, "after_bytes": MB + 7})
    with pytest.raises(VeoTransportError):
        fast_hook().download(sized(video_url), target)
    assert target.read_bytes() == PREVIOUS and listing(tmp_path) == ["v.mp4"]
    veo_emulator.set_faults(download_cut={"times": 1, "after_bytes": 100})  # the first attempt only
    assert fast_hook().download(sized(video_url), target) == str(target)
    assert target.read_bytes() == whole(sized(video_url)) and target.stat().st_size == SIZE
    assert listing(tmp_path) == ["v.mp4"]


def test_operator_whose_downloads_are_cut_fails_without_a_file_and_its_retry_pays_nothing(
    veo_emulator: Any, emulator_conn: Any, tmp_path: Path
) -> None:
    """The task fails retryably with no file; the next try resumes the same paid job and downloads it."""
    veo_emulator.set_faults(download_cut={"times": None}, video_size=SIZE)
    target = tmp_path / "out" / "v.mp4"
    store = FakeStore()
    task = op(deferrable=False, output_path=str(target), model="veo2")
    with pytest.raises(VeoTransportError) as info:
        task.execute({"task_state_store": store})
    assert not isinstance(info.value, AirflowFailException), "Airflow's retry must get its turn"
    assert listing(target.parent) == []
    assert veo_emulator.jobs_created == 1 and store.values[LEDGER_KEY]["state"] == "submitted"

    veo_emulator.set_faults(download_cut=None)
    result = op(deferrable=False, output_path=str(target), model="veo2").execute({"task_state_store": store})
    assert veo_emulator.jobs_created == 1, "the retry resumed the job already paid for"
    assert result["output_path"] == str(target) and target.stat().st_size == SIZE
    assert listing(target.parent) == ["v.mp4"]


# ----------------------------------------------------------------- size cap (max_download_mb)


def test_a_video_over_the_cap_is_refused_before_anything_is_written(
    veo_emulator: Any, emulator_conn: Any, video_url: str, tmp_path: Path
) -> None:
    emulator_conn(max_retries=2, max_download_mb=1)
    with pytest.raises(VeoDownloadTooLarge, match="max_download_mb") as info:
        fast_hook().download(sized(video_url, MB + 1), tmp_path / "v.mp4")
    assert isinstance(info.value, AirflowFailException), "final: a retry cannot make it smaller"
    assert listing(tmp_path) == []
    assert fast_hook().download(sized(video_url, MB), tmp_path / "v.mp4"), "exactly the cap is fine"
    assert (tmp_path / "v.mp4").stat().st_size == MB and listing(tmp_path) == ["v.mp4"]


@pytest.mark.parametrize("declared", [None, "10", "1048576"], ids=["no-length", "lying-low", "at-the-cap"])
def test_a_stream_that_passes_the_cap_is_cut_whatever_its_content_length_says(
    veo_conn: Any, tmp_path: Path, declared: str | None
) -> None:
    veo_conn(max_download_mb=1, max_retries=2)
    target = tmp_path / "v.mp4"
    target.write_bytes(PREVIOUS)
    headers = {"content-type": "video/mp4"} | ({"content-length": declared} if declared else {})
    pulled: list[int] = []

    def body() -> Iterator[bytes]:
        for i in range(64):
            pulled.append(i)
            yield b"x" * (256 * 1024)

    with respx.mock:
        respx.get(CDN).mock(side_effect=lambda request: httpx.Response(200, headers=headers, stream=Chunks(body())))
        with pytest.raises(VeoDownloadTooLarge):
            fast_hook().download(CDN, target)
    assert len(pulled) <= 8 and target.read_bytes() == PREVIOUS and listing(tmp_path) == ["v.mp4"]


# ------------------------------------------------------------------ dropped / failed answers


@pytest.mark.parametrize(
    "failure",
    [
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("connection reset by peer"),
        httpx.ReadTimeout("the CDN went quiet"),
    ],
    ids=["protocol", "reset", "timeout"],
)
def test_a_stream_dropped_mid_body_leaves_no_file(veo_conn: Any, tmp_path: Path, failure: Exception) -> None:
    veo_conn(max_retries=3)

    def body() -> Iterator[bytes]:
        yield b"x" * MB
        yield b"y" * 1000
        raise failure

    with respx.mock:
        route = respx.get(CDN).mock(
            side_effect=lambda request: httpx.Response(
                200, headers={"content-type": "video/mp4", "content-length": str(3 * MB)}, stream=Chunks(body())
            )
        )
        with pytest.raises(VeoTransportError):
            fast_hook().download(CDN, tmp_path / "v.mp4")
    assert route.call_count == 3 and listing(tmp_path) == []


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (403, "text/html", b"<html><body>Request has expired</body></html>"),
        (404, "application/xml", b"<Error><Code>NoSuchKey</Code></Error>"),
        (410, "text/plain", b"gone"),
        (500, "text/html", b"<html>Internal Server Error</html>"),
        (503, "text/html", b"<html>Service Unavailable</html>"),
    ],
)
def test_an_error_status_leaves_no_file(
    veo_conn: Any, tmp_path: Path, status: int, content_type: str, body: bytes
) -> None:
    veo_conn(max_retries=2)
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(status, headers={"content-type": content_type}, content=body))
        with pytest.raises(VeoError):
            fast_hook().download(CDN, tmp_path / "v.mp4")
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------- disk full


class _FullDisk:
    """A file object whose writes fail with ENOSPC once ``room`` bytes are written (or on close)."""

    def __init__(self, fh: Any, room: int | None, fail: type[BaseException] = OSError) -> None:
        self.fh, self.room, self.fail = fh, room, fail

    def _raise(self) -> None:
        if self.fail is OSError:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise self.fail()

    def write(self, data: bytes) -> int:
        if self.room is not None and len(data) > self.room:
            self.fh.write(data[: self.room])  # a partial write, as a filling disk does
            self.room = 0
            self._raise()
        if self.room is not None:
            self.room -= len(data)
        return self.fh.write(data)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
        if self.room is None and exc[0] is None:
            self._raise()  # the data was buffered; closing (flushing) it finds the disk full

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


@contextlib.contextmanager
def full_disk(room: int | None, fail: type[BaseException] = OSError) -> Iterator[None]:
    """Every file the download module opens from now on fills the disk after ``room`` bytes."""
    real_fdopen = os.fdopen
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(files.os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k), room, fail))
        yield


@pytest.mark.parametrize(
    ("room", "fail"),
    [
        (0, OSError),
        (MB + 1, OSError),
        (SIZE - 1, OSError),
        (None, OSError),  # on close
        (2 * MB, KeyboardInterrupt),  # the worker is told to stop mid-write
    ],
    ids=["at-once", "second-chunk", "last-byte", "on-close", "interrupted"],
)
def test_a_full_disk_leaves_no_file_and_keeps_the_previous_one(
    video_url: str, tmp_path: Path, room: int | None, fail: type[BaseException]
) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(PREVIOUS)
    with full_disk(room, fail), pytest.raises(fail) as info:
        fast_hook().download(sized(video_url), target)
    if fail is OSError:
        assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == PREVIOUS and listing(tmp_path) == ["v.mp4"]


def test_operator_on_a_full_disk_fails_without_a_file_and_pays_once(
    veo_emulator: Any, emulator_conn: Any, tmp_path: Path
) -> None:
    target = tmp_path / "v.mp4"
    store = FakeStore()
    with full_disk(1000), pytest.raises(OSError, match="No space left"):
        op(deferrable=False, output_path=str(target), model="veo2").execute({"task_state_store": store})
    assert listing(tmp_path) == [] and veo_emulator.jobs_created == 1
    op(deferrable=False, output_path=str(target), model="veo2").execute({"task_state_store": store})
    assert veo_emulator.jobs_created == 1 and target.is_file() and listing(tmp_path) == ["v.mp4"]


# ------------------------------------------------------------- regressions found by this sweep (fixed)


@pytest.mark.parametrize("received", [0, 10, MB, 2 * MB - 1])
def test_a_body_shorter_than_its_content_length_leaves_no_file(veo_conn: Any, tmp_path: Path, received: int) -> None:
    veo_conn(max_retries=2)
    with respx.mock:
        respx.get(CDN).mock(
            side_effect=lambda request: httpx.Response(
                200,
                headers={"content-type": "video/mp4", "content-length": str(2 * MB)},
                stream=Chunks(iter([b"x" * received])),
            )
        )
        with pytest.raises(VeoError):
            fast_hook().download(CDN, tmp_path / "v.mp4")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<!doctype html><html><body>Access denied</body></html>"),
        ("application/json", b'{"error": {"code": "expired", "message": "link expired"}}'),
        ("application/xml", b"<Error><Code>AccessDenied</Code></Error>"),
        ("text/plain", b"Service temporarily unavailable"),
    ],
    ids=["html", "json", "xml", "text"],
)
def test_an_error_page_answered_with_200_is_not_saved_as_the_video(
    veo_conn: Any, tmp_path: Path, content_type: str, body: bytes
) -> None:
    veo_conn(max_retries=2)
    with respx.mock:
        respx.get(CDN).mock(return_value=httpx.Response(200, headers={"content-type": content_type}, content=body))
        with pytest.raises(VeoError):
            fast_hook().download(CDN, tmp_path / "v.mp4")
    assert listing(tmp_path) == []


def test_the_temporary_file_is_synced_before_it_is_renamed_into_place(
    monkeypatch: pytest.MonkeyPatch, video_url: str, tmp_path: Path
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    fast_hook().download(sized(video_url, MB), tmp_path / "v.mp4")
    assert "fsync" in calls and calls.index("fsync") < calls.index("replace")


def test_the_token_is_never_sent_to_the_video_host(veo_conn: Any, tmp_path: Path) -> None:
    """A download fault must not make the hook fall back to an authenticated request."""
    veo_conn(max_retries=2)
    with respx.mock:
        route = respx.get(CDN).mock(
            side_effect=[
                httpx.ReadError("cut"),
                httpx.Response(200, headers={"content-type": "video/mp4"}, content=b"v"),
            ]
        )
        fast_hook().download(CDN, tmp_path / "v.mp4")
    assert route.call_count == 2
    assert all(SECRET_TOKEN not in str(call.request.headers) for call in route.calls)
    assert "authorization" not in route.calls.last.request.headers
