"""What we send: request models, validated before any paid call (messages name the field and the fix)."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from veo_provider.addresses import AddressRefused, check_url
from veo_provider.models.names import KNOWN_MODELS
from veo_provider.settings import GET_1080P

_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

#: Spellings users may write for an action, mapped to our canonical name.
ACTION_ALIASES: dict[str, str] = {"get_1080p": GET_1080P, "get1080p": GET_1080P}
VIDEO_ACTIONS = ("text2video", "image2video", "ingredients2video", GET_1080P)

MOTION_TYPES: tuple[str, ...] = (
    "STATIONARY",
    "STATIONARY_UP",
    "STATIONARY_DOWN",
    "STATIONARY_LEFT",
    "STATIONARY_RIGHT",
    "STATIONARY_DOLLY_IN_ZOOM_OUT",
    "STATIONARY_DOLLY_OUT_ZOOM_IN",
    "UP",
    "DOWN",
    "LEFT_TO_RIGHT",
    "RIGHT_TO_LEFT",
    "FORWARD",
    "BACKWARD",
    "DOLLY_IN_ZOOM_OUT",
    "DOLLY_OUT_ZOOM_IN",
)
ASPECT_RATIOS = ("16:9", "9:16", "3:4", "4:3", "1:1")


class VeoRequestError(ValueError):
    """A request that would be refused (or would waste money): names the field and the fix."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("Invalid Veo request: " + "; ".join(errors))


def _check_http_url(field: str, value: str) -> str:
    value = value.strip()
    if not re.match(r"^https?://[^\s/]+", value, re.IGNORECASE):
        raise ValueError(f"{field} must be an http(s) URL (got {value[:80]!r}): pass a public http:// or https:// URL")
    return value


def _check_public_url(field: str, value: str) -> str:
    """An image URL the vendor can fetch: http(s), a public host, no credentials, no spaces.

    The API downloads it from the vendor's side: a private or loopback address cannot work and
    would tell a stranger our internal host names. Text checks only (no DNS: this runs when a DAG
    is parsed, and in the emulator); the hook resolves the host before it submits.
    """
    try:
        return check_url(
            field,
            value.strip(),
            fix="upload the image somewhere public the Veo API can fetch, e.g. a signed bucket URL",
        )
    except AddressRefused as exc:
        raise ValueError(str(exc)) from None


class _Request(BaseModel):
    """Fields common to every paid endpoint; extra fields pass through (``extra_body``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, str_strip_whitespace=True)

    path: ClassVar[str]

    callback_url: str | None = None
    async_: bool | None = Field(default=None, alias="async")

    @field_validator("callback_url")
    @classmethod
    def _callback_is_http(cls, v: str | None) -> str | None:
        return None if v is None else _check_http_url("callback_url", v)

    @field_validator("prompt", check_fields=False)
    @classmethod
    def _prompt_length(cls, v: str | None) -> str | None:
        return _check_prompt(v)

    def to_body(self) -> dict[str, Any]:
        """The JSON body the API expects (aliases applied, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def near_miss(model: str) -> str | None:
    """The known model an unknown id was probably meant to be (``veo-3`` -> ``veo3``), if any."""
    if model in KNOWN_MODELS:
        return None
    squashed = {_squash(k): k for k in KNOWN_MODELS}
    if _squash(model) in squashed:
        return squashed[_squash(model)]
    close = difflib.get_close_matches(model.lower(), sorted(KNOWN_MODELS), n=1, cutoff=0.85)
    return close[0] if close else None


def _check_model(v: str | None) -> str | None:
    if v is None:
        return v
    v = v.strip()
    if (meant := near_miss(v)) is not None:
        raise ValueError(f"model {v!r} is not a Veo model: did you mean {meant!r}?")
    if v not in KNOWN_MODELS and not _MODEL_NAME.match(v):
        raise ValueError(
            f"model {v!r} is not a model name: use one of {sorted(KNOWN_MODELS)} "
            "or a new model's exact lowercase id (letters, digits, '-', '.', '_')"
        )
    return v


#: Google documents 1,024 tokens for a Veo prompt; far longer text is a bug in the DAG, not a prompt.
MAX_PROMPT_CHARS = 5000


def _check_prompt(v: str | None) -> str | None:
    if v is not None and len(v) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"prompt is {len(v):,} characters, more than the {MAX_PROMPT_CHARS:,} a Veo prompt can use "
            "(Google documents 1,024 tokens): shorten it"
        )
    return v


class VideosRequest(_Request):
    """Body of ``POST /veo/videos`` (text2video, image2video, ingredients2video, 1080p fetch)."""

    path: ClassVar[str] = "/veo/videos"

    action: str
    model: str | None = None
    prompt: str | None = None
    image_urls: list[str] | None = None
    video_id: str | None = None
    resolution: Literal["720p", "1080p", "4k", "gif"] | None = None
    aspect_ratio: Literal["16:9", "9:16", "3:4", "4:3", "1:1"] | None = None
    translation: bool | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        return _check_model(v)

    @field_validator("action", mode="before")
    @classmethod
    def _canonical_action(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = ACTION_ALIASES.get(v.strip().lower(), v.strip().lower())
            if v not in VIDEO_ACTIONS:
                raise ValueError(
                    f"action {v!r} is not a /veo/videos action: use one of "
                    "text2video, image2video, ingredients2video, get1080p (or get_1080p)"
                )
        return v

    @field_validator("image_urls")
    @classmethod
    def _urls(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return [_check_public_url(f"image_urls[{i}]", u) for i, u in enumerate(v)]

    @model_validator(mode="after")
    def _per_action(self) -> VideosRequest:
        n = len(self.image_urls or [])
        if self.action in ("text2video", "image2video", "ingredients2video") and not self.prompt:
            raise ValueError(f"{self.action} needs a prompt: describe the video to generate")
        if self.action == "text2video" and n:
            raise ValueError(f"text2video takes no image_urls (got {n}): use action='image2video' to start from images")
        if self.action == "image2video" and not 1 <= n <= 2:
            raise ValueError(
                f"image2video needs 1 or 2 image_urls (got {n}): pass the first frame, and optionally the last"
            )
        if self.action == "ingredients2video" and not 1 <= n <= 3:
            raise ValueError(f"ingredients2video needs 1 to 3 image_urls (got {n}): pass up to three reference images")
        if self.action == GET_1080P and not self.video_id:
            raise ValueError(
                "get1080p needs video_id: pass the data[].id of an earlier result "
                "(for example the 'video_id' in the generating task's XCom)"
            )
        if self.resolution == "4k" and self.model and self.model in KNOWN_MODELS and self.model != "veo31":
            raise ValueError(f"resolution '4k' is only offered by model 'veo31' (got model {self.model!r})")
        return self

    def to_body(self, get1080p_action: str = GET_1080P) -> dict[str, Any]:
        """Send the 1080p fetch with the spelling the configured API accepts."""
        body = super().to_body()
        if body["action"] == GET_1080P:
            body["action"] = get1080p_action
        return body


class UpsampleRequest(_Request):
    """Body of ``POST /veo/upsample``."""

    path: ClassVar[str] = "/veo/upsample"

    video_id: str = Field(min_length=1)
    action: Literal["1080p", "4k", "gif"] = "1080p"


class ExtendRequest(_Request):
    """Body of ``POST /veo/extend``."""

    path: ClassVar[str] = "/veo/extend"

    video_id: str = Field(min_length=1)
    prompt: str | None = None
    model: str | None = None
    aspect_ratio: Literal["16:9", "9:16", "3:4", "4:3", "1:1"] | None = None
    resolution: Literal["720p", "1080p"] | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        return _check_model(v)


class ReshootRequest(_Request):
    """Body of ``POST /veo/reshoot``."""

    path: ClassVar[str] = "/veo/reshoot"

    video_id: str = Field(min_length=1)
    motion_type: str

    @field_validator("motion_type", mode="before")
    @classmethod
    def _motion(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().upper() in MOTION_TYPES:
            return v.strip().upper()
        raise ValueError(f"motion_type {v!r} is unknown: use one of {', '.join(MOTION_TYPES)}")


class ObjectsRequest(_Request):
    """Body of ``POST /veo/objects``."""

    path: ClassVar[str] = "/veo/objects"

    video_id: str = Field(min_length=1)
    action: Literal["insert", "remove"]
    prompt: str | None = None
    image_mask: str | None = None

    @field_validator("image_mask")
    @classmethod
    def _mask(cls, v: str | None) -> str | None:
        # A URL must be one the API can fetch; anything without a scheme is base64 image data.
        return _check_public_url("image_mask", v) if v is not None and "://" in v[:16] else v

    @model_validator(mode="after")
    def _per_action(self) -> ObjectsRequest:
        if self.action == "insert" and not self.prompt:
            raise ValueError("objects action 'insert' needs a prompt: describe the object to insert")
        if self.action == "remove" and not self.image_mask:
            raise ValueError("objects action 'remove' needs image_mask: a URL or base64 JPEG marking the object")
        return self


VeoRequest = VideosRequest | UpsampleRequest | ExtendRequest | ReshootRequest | ObjectsRequest

#: Endpoint name (as users write it) -> request model.
ENDPOINTS: dict[str, type[_Request]] = {
    "videos": VideosRequest,
    "upsample": UpsampleRequest,
    "extend": ExtendRequest,
    "reshoot": ReshootRequest,
    "objects": ObjectsRequest,
}


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = f"{loc} is required: pass {loc}=..."
        elif err["type"] == "literal_error":
            msg = f"{loc} {err.get('input')!r} is not accepted: {msg}"
        elif loc and not msg.startswith(loc.split("[")[0]) and loc not in msg:
            msg = f"{loc}: {msg}"
        out.append(msg)
    return out


def build_request(endpoint: str, **fields: Any) -> VeoRequest:
    """Validate user input for ``endpoint`` into a request model, or raise VeoRequestError.

    ``None`` values are dropped so that optional operator arguments stay unset.
    """
    try:
        model = ENDPOINTS[endpoint]
    except KeyError:
        raise VeoRequestError([f"endpoint {endpoint!r} is unknown: use one of {', '.join(ENDPOINTS)}"]) from None
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})  # type: ignore[return-value]
    except ValidationError as exc:
        raise VeoRequestError(_format_errors(exc)) from None


def request_from_arguments(
    endpoint: str, arguments: dict[str, Any], extra_body: dict[str, Any] | None = None
) -> VeoRequest:
    """The request an operator's rendered arguments ask for; VeoRequestError names what is wrong.

    An argument the endpoint does not take is refused (it would be silently dropped otherwise);
    ``extra_body`` passes new API fields through but never overrides an explicit argument.
    """
    if not isinstance(endpoint, str):
        raise VeoRequestError(
            [f"endpoint must be a string (got a {type(endpoint).__name__}): use one of {', '.join(ENDPOINTS)}"]
        )
    if extra_body is not None and not isinstance(extra_body, dict):
        raise VeoRequestError([f"extra_body must be a dict of JSON fields (got a {type(extra_body).__name__})"])
    try:
        json.dumps(extra_body or {}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise VeoRequestError(
            [f"extra_body must hold only JSON values (numbers, strings, lists, dicts): {exc}"]
        ) from None
    explicit = {k: v for k, v in arguments.items() if v is not None}
    if endpoint == "videos":
        explicit.setdefault("action", "text2video")
    if isinstance(explicit.get("image_urls"), str):
        explicit["image_urls"] = [explicit["image_urls"]]
    model = ENDPOINTS.get(endpoint)
    if model is not None and (unused := sorted(set(explicit) - set(model.model_fields))):
        raise VeoRequestError(
            [
                f"{', '.join(unused)} not taken by endpoint {endpoint!r}: remove them, "
                "or choose the endpoint that takes them"
            ]
        )
    return build_request(endpoint, **{**(extra_body or {}), **explicit})


def fetched_urls(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, URL) of every URL in a request body that the vendor will fetch (images, a mask)."""
    urls = [(f"image_urls[{i}]", u) for i, u in enumerate(body.get("image_urls") or []) if isinstance(u, str)]
    mask = body.get("image_mask")
    if isinstance(mask, str) and "://" in mask[:16]:
        urls.append(("image_mask", mask))
    return urls


#: Fields users of Google's Veo expect that AceData does not document: passed through when given.
PASS_THROUGH_FIELDS = ("duration", "negative_prompt", "seed", "sample_count", "person_generation", "generate_audio")


def unknown_extra_fields(endpoint: str, extra_body: dict[str, Any] | None) -> list[str]:
    """A warning for each ``extra_body`` key the endpoint is not known to take, naming the nearest known field."""
    model = ENDPOINTS.get(endpoint)
    if not extra_body or model is None:
        return []
    known = {f.alias or name for name, f in model.model_fields.items()} | set(PASS_THROUGH_FIELDS)
    warnings = []
    for key in (k for k in extra_body if k not in known):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        meant = f"did you mean {close[0]!r}? " if close else "a new API field? "
        warnings.append(f"extra_body field {key!r} is not one {model.path} is known to take ({meant}sent as given)")
    return warnings


def describe(body: dict[str, Any]) -> str:
    """What a submission asks for, for logs (no prompt text, no callback URL: it holds a signature)."""
    keys = ("action", "model", "video_id", "resolution", "aspect_ratio", "motion_type")
    parts = [f"{k}={body[k]}" for k in keys if body.get(k) is not None]
    if body.get("image_urls"):
        parts.append(f"images={len(body['image_urls'])}")
    parts.append("mode=" + ("callback" if body.get("callback_url") else "async" if body.get("async") else "sync"))
    return ", ".join(parts)
