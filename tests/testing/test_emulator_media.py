"""The emulator's videos: consecutive jobs show different pictures, an upscale a larger frame of the same one."""

from __future__ import annotations

import struct
import warnings
from typing import Any

import pytest

from veo_provider.testing.emulator import EmulatorConfig, clip_mp4, create_app, sample_mp4
from veo_provider.testing.emulator.media import PICTURES, RESOLUTIONS, delivered_resolution

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

HEADERS = {"authorization": "Bearer test-token"}


def frame_size(mp4: bytes) -> tuple[int, int]:
    """Width and height of the video track, from its ``tkhd`` box (16.16 fixed point, its last 8 bytes)."""
    at = mp4.index(b"tkhd") - 4
    (size,) = struct.unpack(">I", mp4[at : at + 4])
    width, height = struct.unpack(">II", mp4[at + size - 8 : at + size])
    return width >> 16, height >> 16


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(EmulatorConfig(generation_seconds=0)), headers=HEADERS)


def generate(client: TestClient, prompt: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/veo/videos", json={"action": "text2video", "model": "veo3", "prompt": prompt, **extra})
    assert r.status_code == 200, r.text
    return r.json()["data"][0]


def download(client: TestClient, item: dict[str, Any], query: str = "") -> bytes:
    r = client.get(item["video_url"] + query)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text
    return r.content


def test_consecutive_jobs_get_different_pictures_of_one_length(client):
    videos = [download(client, generate(client, f"clip {i}")) for i in range(PICTURES)]
    assert len(set(videos)) == PICTURES, "every job of a run of six shows its own picture"
    assert {len(v) for v in videos} == {len(sample_mp4())}, "a 720p download's size does not depend on the picture"
    assert {frame_size(v) for v in videos} == {(1280, 720)}
    assert download(client, generate(client, "seventh")) == videos[0], "pictures come round again"


@pytest.mark.parametrize(
    ("path", "body", "frame"),
    [
        ("/veo/videos", {"action": "get1080p"}, (1920, 1080)),
        ("/veo/videos", {"action": "get_1080p"}, (1920, 1080)),
        ("/veo/upsample", {"action": "1080p"}, (1920, 1080)),
        ("/veo/upsample", {"action": "4k"}, (3840, 2160)),
    ],
)
def test_an_upscale_is_a_larger_frame_of_the_same_picture(client, path, body, frame):
    generate(client, "first")  # so that the source is not the first picture
    source = generate(client, "second")
    r = client.post(path, json={**body, "video_id": source["id"]})
    assert r.status_code == 200, r.text
    upscaled = download(client, r.json()["data"][0])
    label = "1080p" if frame[1] == 1080 else "4k"
    assert upscaled == clip_mp4(1, label) and frame_size(upscaled) == frame
    assert len(upscaled) > len(download(client, source))


def test_a_generation_that_asks_for_4k_is_delivered_at_4k(client):
    item = generate(client, "sharp", model="veo31", resolution="4k")
    assert frame_size(download(client, item)) == (3840, 2160)


def test_an_upscale_keeps_the_size_padding_for_benchmarks(client):
    source = generate(client, "big")
    r = client.post("/veo/upsample", json={"action": "4k", "video_id": source["id"]})
    item = r.json()["data"][0]
    padded = download(client, item, "?size=200000")
    clip = clip_mp4(0, "4k")
    assert len(padded) == 200_000 and padded.startswith(clip)
    assert padded[len(clip) : len(clip) + 8] == struct.pack(">I4s", 200_000 - len(clip), b"free")
    assert int(client.head(item["video_url"] + "?size=200000").headers["content-length"]) == 200_000


def test_a_reset_starts_again_from_the_first_picture(client):
    first = download(client, generate(client, "a"))
    download(client, generate(client, "b"))
    assert client.post("/_emulator/reset").status_code == 200
    assert download(client, generate(client, "c")) == first


@pytest.mark.parametrize(
    ("endpoint", "body", "resolution"),
    [
        ("videos", {"action": "text2video"}, "720p"),
        ("videos", {"action": "text2video", "resolution": "1080p"}, "1080p"),
        ("videos", {"action": "text2video", "resolution": "gif"}, "720p"),
        ("upsample", {"action": "gif"}, "720p"),
        ("extend", {"resolution": "1080p"}, "1080p"),
        ("reshoot", {"resolution": "4k"}, "720p"),
    ],
)
def test_the_delivered_resolution_follows_what_was_asked(endpoint, body, resolution):
    assert delivered_resolution(endpoint, body) == resolution


def test_every_clip_is_packaged_and_a_resolution_must_be_known():
    for resolution in RESOLUTIONS:
        assert {len(clip_mp4(p, resolution)) for p in range(PICTURES)} == {len(clip_mp4(0, resolution))}
    with pytest.raises(ValueError, match="resolution '8k' is not one of 720p, 1080p, 4k"):
        clip_mp4(0, "8k")
