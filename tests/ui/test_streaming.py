"""Range parsing, and streaming through ObjectStoragePath from a scheme other than file://."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException

from veo_provider.ui.streaming import CHUNK, open_recorded, parse_range, stream


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-0", (0, 0)),
        ("bytes=5-", (5, 9)),
        ("bytes=-3", (7, 9)),
        ("bytes=-30", (0, 9)),
        ("bytes=2-100", (2, 9)),
        ("bytes=0-1,4-5", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_headers_are_read_as_rfc_9110_says(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=5-2", "bytes=-0"])
def test_an_unsatisfiable_range_is_416_with_the_size(header: str) -> None:
    with pytest.raises(HTTPException) as err:
        parse_range(header, 10)
    assert err.value.status_code == 416 and err.value.headers == {"Content-Range": "bytes */10"}


def _body(response) -> bytes:  # type: ignore[no-untyped-def]
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.body_iterator])

    return asyncio.run(read())


@pytest.fixture
def memory_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve ``memory://`` the way a provider registers its scheme (e.g. s3:// from the Amazon provider)."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io import fs
    except ImportError:  # Airflow 3.0: ObjectStoragePath is airflow.io's, with its registry
        import airflow.io as fs

    monkeypatch.setitem(fs._register_filesystems(), "memory", lambda conn_id, options: MemoryFileSystem())  # type: ignore[index]


@pytest.mark.usefixtures("memory_scheme")
def test_any_object_storage_scheme_streams_a_range() -> None:
    data = bytes(range(256)) * (CHUNK // 128)  # two chunks' worth
    path = open_recorded("memory://veo-ui-test/clips/a.webm")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        r = stream(path, f"bytes=10-{CHUNK + 20}")
        assert r.status_code == 206 and r.headers["content-type"] == "video/webm"
        assert r.headers["content-range"] == f"bytes 10-{CHUNK + 20}/{len(data)}"
        assert _body(r) == data[10 : CHUNK + 21]
    finally:
        path.unlink()


def test_a_plain_local_path_is_opened_as_a_file_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"0123456789")
    r = stream(open_recorded(str(target)), "bytes=-4")
    assert _body(r) == b"6789" and r.headers["content-type"] == "video/mp4"


@pytest.mark.usefixtures("memory_scheme")
def test_a_file_gone_from_its_object_store_is_404() -> None:
    with pytest.raises(HTTPException) as err:
        stream(open_recorded("memory://veo-ui-test/never-written.mp4"), None)
    assert err.value.status_code == 404


@pytest.mark.parametrize("name", ["page.html", "image.svg", "script.js", "noext"])
def test_a_file_that_is_not_a_video_is_only_ever_downloaded(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / name
    target.write_bytes(b"<script>alert(document.cookie)</script>")
    r = stream(open_recorded(str(target)), None)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == "attachment"
    assert r.headers["content-security-policy"].startswith("sandbox")


@pytest.mark.parametrize(("name", "media"), [("a.mp4", "video/mp4"), ("a.webm", "video/webm"), ("a.gif", "image/gif")])
def test_videos_and_gifs_keep_their_type_for_the_player(tmp_path, name: str, media: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / name
    target.write_bytes(b"0123")
    r = stream(open_recorded(str(target)), None)
    assert r.headers["content-type"] == media and "content-disposition" not in r.headers
