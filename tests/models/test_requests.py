"""Request validation: every bad field is refused with the field and the fix, before any paid call."""

from __future__ import annotations

import pytest

from veo_provider.models import KNOWN_MODELS, VeoRequestError, build_request

URL = "https://cdn.example/a.png"


def errors(endpoint: str, **fields) -> str:
    with pytest.raises(VeoRequestError) as info:
        build_request(endpoint, **fields)
    return str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "text2video"}, "text2video needs a prompt"),
        ({"action": "text2video", "prompt": "x", "image_urls": [URL]}, "text2video takes no image_urls (got 1)"),
        ({"action": "image2video", "prompt": "x"}, "image2video needs 1 or 2 image_urls (got 0)"),
        (
            {"action": "image2video", "prompt": "x", "image_urls": [URL] * 3},
            "image2video needs 1 or 2 image_urls (got 3)",
        ),
        ({"action": "image2video", "image_urls": [URL]}, "image2video needs a prompt"),
        ({"action": "ingredients2video", "prompt": "x", "image_urls": [URL] * 4}, "1 to 3 image_urls (got 4)"),
        (
            {"action": "image2video", "prompt": "x", "image_urls": ["file:///etc/passwd"]},
            "image_urls[0] must be an http(s) URL",
        ),
        ({"action": "get_1080p"}, "get1080p needs video_id"),
        ({"action": "get1080p"}, "get1080p needs video_id"),
        ({"action": "make_video", "prompt": "x"}, "action 'make_video' is not a /veo/videos action"),
        ({"prompt": "x"}, "action is required"),
        ({"action": "text2video", "prompt": "x", "model": "VEO3!"}, "did you mean 'veo3'?"),
        ({"action": "text2video", "prompt": "x", "model": "a model"}, "model 'a model' is not a model name"),
        (
            {"action": "text2video", "prompt": "x", "callback_url": "localhost/cb"},
            "callback_url must be an http(s) URL",
        ),
        ({"action": "text2video", "prompt": "x", "aspect_ratio": "21:9"}, "aspect_ratio '21:9' is not accepted"),
        ({"action": "text2video", "prompt": "x", "resolution": "8k"}, "resolution '8k' is not accepted"),
        ({"action": "text2video", "prompt": "x", "resolution": "4k", "model": "veo3"}, "only offered by model 'veo31'"),
    ],
)
def test_videos_requests_are_refused_with_the_field_and_the_fix(fields, message):
    assert message in errors("videos", **fields)


def test_every_error_is_reported_at_once():
    text = errors("videos", action="image2video", prompt="x", image_urls=["nope"], aspect_ratio="2:1")
    assert "image_urls[0]" in text and "aspect_ratio" in text


@pytest.mark.parametrize(
    ("endpoint", "fields", "message"),
    [
        ("upsample", {}, "video_id is required"),
        ("upsample", {"video_id": "v", "action": "8k"}, "action '8k' is not accepted"),
        ("extend", {"video_id": "v", "resolution": "4k"}, "resolution '4k' is not accepted"),
        ("reshoot", {"video_id": "v", "motion_type": "SPIN"}, "motion_type 'SPIN' is unknown"),
        ("objects", {"video_id": "v", "action": "insert"}, "'insert' needs a prompt"),
        ("objects", {"video_id": "v", "action": "remove"}, "'remove' needs image_mask"),
        ("nope", {}, "endpoint 'nope' is unknown"),
    ],
)
def test_editing_requests_are_validated(endpoint, fields, message):
    assert message in errors(endpoint, **fields)


def test_valid_requests_and_their_bodies():
    assert build_request("videos", action="GET_1080P", video_id="v").to_body() == {
        "action": "get1080p",
        "video_id": "v",
    }
    assert build_request("videos", action="get1080p", video_id="v").to_body("get_1080p")["action"] == "get_1080p"
    body = build_request(
        "videos", action="image2video", prompt="p", image_urls=[URL, URL], model="veo31-fast", translation=True
    ).to_body()
    assert body == {
        "action": "image2video",
        "prompt": "p",
        "image_urls": [URL, URL],
        "model": "veo31-fast",
        "translation": True,
    }
    assert (
        build_request("reshoot", video_id="v", motion_type="left_to_right").to_body()["motion_type"] == "LEFT_TO_RIGHT"
    )
    assert build_request("upsample", video_id="v").to_body() == {"video_id": "v", "action": "1080p"}


def test_new_model_names_pass_and_extra_fields_pass_through():
    assert "veo4-preview" not in KNOWN_MODELS
    body = build_request("videos", action="text2video", prompt="p", model="veo4-preview", duration=8, seed=3).to_body()
    assert body["model"] == "veo4-preview" and body["duration"] == 8 and body["seed"] == 3


def test_async_is_sent_under_its_api_name():
    assert build_request("videos", action="text2video", prompt="p", **{"async": True}).to_body()["async"] is True
