"""Hostile input (whatever a rendered template can produce): fuzzed VeoOperator arguments are refused before any HTTP call.

Every bad value is refused with an ``AirflowFailException`` (or a ``ValueError`` when the DAG is
parsed) whose message names the field, before any request (respx ``call_count == 0``) and
before the ledger is touched (the task state store is never written). Values are what a rendered
template can produce: strings where lists or numbers are expected, empty or huge strings, URLs of
every scheme, and plain wrong types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support import BASE_URL, op, unmapped
from tests.test_addresses import NON_GLOBAL, fake_dns, spellings
from veo_provider.models.requests import ACTION_ALIASES, ENDPOINTS, MOTION_TYPES, VIDEO_ACTIONS
from veo_provider.testing.fakes import FakeStore

pytestmark = pytest.mark.usefixtures("veo_conn")

#: The number of examples is the Hypothesis profile's (tests/conftest.py: a few locally, 200 in CI).
SWEEP = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

TEXT = st.characters(exclude_categories=("Cs",))
#: The arguments of a request that needs no prompt and no model (the editing endpoints).
EDIT = {"prompt": None, "model": None, "video_id": "v-1"}
IMAGE2VIDEO = {"action": "image2video"}


@dataclass
class Bad:
    """Operator arguments (on top of ``op()``'s) and the field the refusal must name."""

    kwargs: dict[str, Any]
    field: str


def refuse(bad: Bad) -> str:
    """Run the operator on ``bad``; assert the refusal names the field and nothing was sent or stored."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as api:
        route = api.route()
        store = FakeStore()
        try:
            task = op(**bad.kwargs)
        except ValueError as exc:  # refused when the DAG is parsed: even better
            message = str(exc)
        else:
            with pytest.raises(AirflowFailException) as info:
                task.execute({"task_state_store": store})
            message = str(info.value)
        assert route.call_count == 0, f"{bad}: an HTTP call was made"
        assert store.writes == [] and store.values == {}, f"{bad}: the ledger was touched"
    assert bad.field in message, f"{bad}: the message does not name {bad.field!r}: {message}"
    return message


# ------------------------------------------------------------------------------ strategies

WRONG_TYPES = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.lists(st.integers(), min_size=1, max_size=3),
)
WRONG_TYPES_FOR_STR = st.one_of(WRONG_TYPES, st.lists(st.text(max_size=5), max_size=3))


def _bad_prompts() -> st.SearchStrategy[Bad]:
    blank = st.text(" \t\r\n", max_size=20)
    huge = st.tuples(st.integers(5001, 100_000), st.characters(exclude_categories=("Cs", "Zs", "Cc"))).map(
        lambda t: t[1] * t[0]
    )
    return st.one_of(blank, huge, st.just("x" * 100_000), WRONG_TYPES_FOR_STR).map(
        lambda p: Bad({"prompt": p}, "prompt")
    )


SCHEMES = ["file", "ftp", "ftps", "sftp", "gopher", "ws", "wss", "s3", "gs", "ldap", "dict", "jar", "smb", "mailto"]
HOSTS = st.sampled_from(["example.com", "cdn.example", "10.0.0.1", "localhost", "", "[::1]"])
PATHS = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20)


@st.composite
def _bad_url(draw: st.DrawFn) -> str:
    """A string that is no public http(s) URL, as a template could render it."""
    kind = draw(st.sampled_from(["scheme", "schemeless", "relative", "jinja-list", "blank", "text"]))
    host, path = draw(HOSTS), draw(PATHS)
    if kind == "scheme":
        return f"{draw(st.sampled_from(SCHEMES))}://{host}/{path}"
    if kind == "schemeless":
        return draw(st.sampled_from(["", "//"])) + f"{host or 'example.com'}/{path}"
    if kind == "relative":
        return "/" + path
    if kind == "jinja-list":  # ``{{ ti.xcom_pull(...) }}`` of a list renders to its repr
        return repr([f"https://{host or 'cdn.example'}/a.png", "https://cdn.example/b.png"])
    if kind == "blank":
        return draw(st.text(" \t\n", max_size=5))
    return draw(st.text(TEXT, max_size=40).filter(lambda t: not t.strip().lower().startswith(("http://", "https://"))))


def _bad_image_urls() -> st.SearchStrategy[Bad]:
    good = "https://cdn.example/a.png"
    return st.one_of(
        _bad_url().map(lambda u: Bad({**IMAGE2VIDEO, "image_urls": [u]}, "image_urls")),
        _bad_url().map(lambda u: Bad({**IMAGE2VIDEO, "image_urls": [good, u]}, "image_urls")),
        _bad_url().map(lambda u: Bad({**IMAGE2VIDEO, "image_urls": u}, "image_urls")),  # one rendered string
        _bad_url().map(lambda u: Bad({"action": "ingredients2video", "image_urls": [u]}, "image_urls")),
        st.one_of(st.integers(), st.dictionaries(st.text(max_size=3), st.text(max_size=3), min_size=1)).map(
            lambda v: Bad({**IMAGE2VIDEO, "image_urls": v}, "image_urls")
        ),
        st.lists(st.one_of(st.none(), st.integers(), st.lists(st.just(good), min_size=1)), min_size=1, max_size=2).map(
            lambda v: Bad({**IMAGE2VIDEO, "image_urls": v}, "image_urls")
        ),
        st.integers(3, 8).map(lambda n: Bad({**IMAGE2VIDEO, "image_urls": [good] * n}, "image_urls")),
        st.integers(4, 8).map(lambda n: Bad({"action": "ingredients2video", "image_urls": [good] * n}, "image_urls")),
        st.just(Bad({"image_urls": [good]}, "image_urls")),  # text2video takes none
        st.just(Bad({**IMAGE2VIDEO, "image_urls": []}, "image_urls")),
    )


def _unknown(known: set[str] | frozenset[str], normalise: Any = lambda v: v.strip()) -> st.SearchStrategy[str]:
    return st.text(TEXT, max_size=30).filter(lambda v: normalise(v) not in known)


def _video_action(v: str) -> str:
    return ACTION_ALIASES.get(v.strip().lower(), v.strip().lower())


def _bad_actions() -> st.SearchStrategy[Bad]:
    return st.one_of(
        _unknown(set(VIDEO_ACTIONS), _video_action).map(lambda a: Bad({"action": a}, "action")),
        WRONG_TYPES_FOR_STR.map(lambda a: Bad({"action": a}, "action")),
        _unknown({"1080p", "4k", "gif"}).map(lambda a: Bad({**EDIT, "endpoint": "upsample", "action": a}, "action")),
        _unknown({"insert", "remove"}).map(
            lambda a: Bad({**EDIT, "endpoint": "objects", "action": a, "image_mask": "m"}, "action")
        ),
    )


def _bad_endpoints() -> st.SearchStrategy[Bad]:
    hashable = st.one_of(st.none(), st.integers(), st.booleans(), st.floats(allow_nan=False))
    return st.one_of(_unknown(set(ENDPOINTS), lambda v: v), hashable).map(lambda e: Bad({"endpoint": e}, "endpoint"))


LOWER = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


def _bad_models() -> st.SearchStrategy[Bad]:
    interior = st.tuples(LOWER, st.sampled_from(list(" !@#$%^&*()/\\:;\"'<>,?~`ABCXYZ{}[]|=+\u00e9\u2603")), LOWER).map(
        "".join
    )
    too_long = st.integers(65, 300).map(lambda n: "v" * n)
    near = st.sampled_from(["Veo3", "VEO3", "veo-3", "veo 3", "veo_3", "veo31fast", "Veo31-Fast", "veo2fast"])
    jinja = st.just("{{ params.model }}")
    return st.one_of(interior, too_long, near, jinja, WRONG_TYPES_FOR_STR).map(lambda m: Bad({"model": m}, "model"))


def _bad_choices() -> st.SearchStrategy[Bad]:
    resolutions = {"720p", "1080p", "4k", "gif"}
    ratios = {"16:9", "9:16", "3:4", "4:3", "1:1"}
    bool_words = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}
    return st.one_of(
        st.one_of(_unknown(resolutions), st.integers(), st.lists(st.just("1080p"), min_size=1)).map(
            lambda r: Bad({"resolution": r}, "resolution")
        ),
        st.just(Bad({"resolution": "4k", "model": "veo3"}, "resolution")),
        st.one_of(_unknown(ratios), st.integers(), st.floats(allow_nan=False)).map(
            lambda r: Bad({"aspect_ratio": r}, "aspect_ratio")
        ),
        st.one_of(
            st.text(TEXT, max_size=10).filter(lambda t: t.strip().lower() not in bool_words),
            st.integers().filter(lambda i: i not in (0, 1)),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.lists(st.booleans(), max_size=2),
        ).map(lambda t: Bad({"translation": t}, "translation")),
        st.one_of(_unknown(set(MOTION_TYPES), lambda v: v.strip().upper()), st.integers()).map(
            lambda m: Bad({**EDIT, "endpoint": "reshoot", "motion_type": m}, "motion_type")
        ),
        st.one_of(st.integers(), st.lists(st.text(max_size=3), min_size=1)).map(
            lambda m: Bad({**EDIT, "endpoint": "objects", "action": "remove", "image_mask": m}, "image_mask")
        ),
    )


def _bad_video_ids() -> st.SearchStrategy[Bad]:
    blank = st.text(" \t\n", max_size=4)
    return st.one_of(
        st.one_of(blank, WRONG_TYPES_FOR_STR.filter(lambda v: v != [])).map(
            lambda v: Bad({"action": "get1080p", "prompt": None, "video_id": v}, "video_id")
        ),
        st.tuples(st.sampled_from(["upsample", "extend", "reshoot", "objects"]), st.one_of(blank, st.integers())).map(
            lambda t: Bad({**EDIT, "endpoint": t[0], "video_id": t[1]}, "video_id")
        ),
    )


def _bad_extra_body() -> st.SearchStrategy[Bad]:
    return st.sampled_from(
        [
            Bad({"extra_body": {"aspect_ratio": "2:1"}}, "aspect_ratio"),
            Bad({"extra_body": {"callback_url": "ftp://x.example/cb"}}, "callback_url"),
            Bad({"extra_body": {"callback_url": "file:///tmp/cb"}}, "callback_url"),
            Bad({"extra_body": {"async": "maybe"}}, "async"),
            Bad({"extra_body": {"model": "Bad Model"}, "model": None}, "model"),
            Bad({"extra_body": {"image_urls": ["file:///etc/passwd"]}, **IMAGE2VIDEO}, "image_urls"),
            Bad({"extra_body": {"prompt": "x" * 6000}, "prompt": None}, "prompt"),
        ]
    )


def _bad_output_paths() -> st.SearchStrategy[Bad]:
    return st.one_of(
        st.tuples(st.sampled_from(["nope", "http", "gopher", "s4"]), PATHS).map(
            lambda t: f"{t[0]}://bucket/{t[1]}.mp4"
        ),
        PATHS.map(lambda p: f"/proc/veo-{p.replace('/', '_')}/x.mp4"),  # a folder nobody can create
        st.text(TEXT, max_size=10).map(lambda p: f"/tmp/veo-{p.replace('/', '_')}\x00/x.mp4"),
        st.just("/"),
        st.just("file://"),
    ).map(lambda p: Bad({"output_path": p}, "output_path"))


def _not_taken() -> st.SearchStrategy[Bad]:
    return st.sampled_from(
        [
            Bad({**EDIT, "endpoint": "upsample", "prompt": "a mug"}, "prompt"),
            Bad({**EDIT, "endpoint": "upsample", "model": "veo3"}, "model"),
            Bad(
                {**EDIT, "endpoint": "reshoot", "motion_type": "UP", "image_urls": ["https://cdn.example/a.png"]},
                "image_urls",
            ),
            Bad({**EDIT, "endpoint": "extend", "translation": True}, "translation"),
            Bad({"motion_type": "UP"}, "motion_type"),
            Bad({"image_mask": "m"}, "image_mask"),
        ]
    )


def _bad_wait_arguments() -> st.SearchStrategy[Bad]:
    seconds = st.sampled_from(["poll_interval", "timeout", "safety_poll_interval"])
    return st.one_of(
        st.tuples(seconds, st.one_of(st.integers(max_value=0), st.floats(max_value=0, allow_nan=False))).map(
            lambda t: Bad({t[0]: t[1]}, t[0])
        ),
        _unknown({"auto", "poll", "callback"}, lambda v: v).map(lambda w: Bad({"wait_mode": w}, "wait_mode")),
        _unknown({"fail", "resubmit"}, lambda v: v).map(
            lambda w: Bad({"on_uncertain_submission": w}, "on_uncertain_submission")
        ),
    )


HOSTILE = st.one_of(
    _bad_prompts(),
    _bad_image_urls(),
    _bad_actions(),
    _bad_endpoints(),
    _bad_models(),
    _bad_choices(),
    _bad_video_ids(),
    _bad_extra_body(),
    _bad_output_paths(),
    _not_taken(),
    _bad_wait_arguments(),
)


# ----------------------------------------------------------------------------- properties


@SWEEP
@given(bad=HOSTILE)
def test_hostile_operator_arguments_are_refused_before_any_http_call(bad: Bad) -> None:
    event(bad.field)
    refuse(bad)


#: What a ``@task.veo`` function may return (request fields and ``endpoint``).
DECORATOR_FIELDS = st.one_of(
    _bad_prompts(), _bad_image_urls(), _bad_actions(), _bad_models(), _bad_choices(), _bad_video_ids()
)


@settings(SWEEP, max_examples=max(1, SWEEP.max_examples * 3 // 10))  # each example builds a DAG
@given(bad=DECORATOR_FIELDS)
def test_hostile_values_returned_by_a_task_veo_function_are_refused_the_same_way(bad: Bad) -> None:
    """``@task.veo`` sets what its function returns, then runs VeoOperator's validation."""
    returned = {"prompt": "a mug", **bad.kwargs}
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as api:
        route = api.route()
        store = FakeStore()
        with pytest.raises(AirflowFailException) as info:
            unmapped(lambda: returned, model="veo3").execute({"task_state_store": store})
        assert route.call_count == 0 and store.writes == []
    assert bad.field in str(info.value)


def test_a_100_kb_prompt_is_refused_with_its_size() -> None:
    message = refuse(Bad({"prompt": "p" * 100_000}, "prompt"))
    assert "100,000 characters" in message and "5,000" in message


def test_an_unknown_but_well_formed_model_id_is_sent_as_documented() -> None:
    """Not a refusal: VeoOperator's docstring promises a newer model's exact id is sent as given."""
    import httpx
    from airflow.providers.common.compat.sdk import TaskDeferred

    with respx.mock(base_url=BASE_URL, assert_all_called=False) as api:
        post = api.post("/veo/videos").mock(return_value=httpx.Response(200, json={"task_id": "t-1"}))
        with pytest.raises(TaskDeferred):
            op(model="veo4-preview").execute({"task_state_store": FakeStore()})
    assert post.call_count == 1


# ------------------------------------------------------------- regressions found by this sweep (fixed)

PRIVATE_IMAGE_URLS = [
    "http://10.0.0.1/x.png",
    "http://172.16.5.4/x.png",
    "http://192.168.1.10/x.png",
    "http://127.0.0.1/x.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/x.png",
    "http://0.0.0.0/x.png",
    "http://localhost/x.png",
    "https://localhost:8443/x.png",
    "http://images.localhost/x.png",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::1]/x.png",
    "http://[fd00::1]/x.png",
    "http://[fe80::1]/x.png",
    "http://[::ffff:10.0.0.1]/x.png",
    "http://2130706433/x.png",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/x.png",  # ... and in hex
    # Bypasses of the first check (its host text was compared before normalisation):
    "http://0177.0.0.1/x.png",
    "http://127.1/x.png",
    "http://0x7f.1/x.png",
    "http://017700000001/x.png",
    "http://127\u30020\u30020\u30021/x.png",  # full-width (ideographic) dots
    "http://[::127.0.0.1]/x.png",
    "http://[::ffff:0:7f00:1]/x.png",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://[2002:a9fe:a9fe::]/latest/meta-data/",  # 6to4 of 169.254.169.254
    "http://metadata/computeMetadata/v1/",
    "http://instance-data/latest/meta-data/",
    "http://localhost.localdomain/x.png",
    "http://127.0.0.1.nip.io/x.png",
    "http://169-254-169-254.sslip.io/latest/",
]

PRIVATE_URL_DEFECT = (
    "models/requests.py _check_http_url only checks the scheme: image URLs on private, loopback, link-local "
    "or metadata hosts are sent to the vendor (who fetches them from its side: they cannot work and leak "
    "internal hostnames)"
)


@pytest.mark.parametrize("url", PRIVATE_IMAGE_URLS)
def test_private_network_image_urls_are_refused_before_any_http_call(url: str) -> None:
    message = refuse(Bad({**IMAGE2VIDEO, "image_urls": [url]}, "image_urls"))
    assert "public" in message


@pytest.mark.parametrize(
    "url",
    [
        "https://exa mple.com/x.png",
        "https://example.com/x .png",
        "https://example.com\n/x.png",
        "https://user:s3cret@example.com/x.png",
    ],
)
def test_malformed_image_urls_are_refused(url: str) -> None:
    refuse(Bad({**IMAGE2VIDEO, "image_urls": [url]}, "image_urls"))


@pytest.mark.parametrize(
    "mask",
    ["file:///etc/passwd", "ftp://files.example/m.png", "http://169.254.169.254/m.png", *PRIVATE_IMAGE_URLS[-14:]],
)
def test_image_mask_urls_are_checked_like_image_urls(mask: str) -> None:
    refuse(Bad({**EDIT, "endpoint": "objects", "action": "remove", "image_mask": mask}, "image_mask"))


@SWEEP
@given(host=NON_GLOBAL.flatmap(spellings))
def test_no_spelling_of_a_private_address_passes_as_an_image_host(host: str) -> None:
    event(host.split(".")[-1] if "nip" in host or "sslip" in host else "literal")
    refuse(Bad({**IMAGE2VIDEO, "image_urls": ["https://cdn.example/a.png", f"http://{host}/b.png"]}, "image_urls"))


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["10.1.1.1"], ["169.254.169.254"], ["93.184.216.34", "10.0.0.9"]])
def test_an_image_host_resolving_to_a_private_address_is_refused_before_the_ledger(
    monkeypatch: pytest.MonkeyPatch, answer: list[str]
) -> None:
    """The text passes; the worker's one DNS look-up before anything is paid does not."""
    fake_dns(monkeypatch, {"images.corp.example": answer})
    message = refuse(Bad({**IMAGE2VIDEO, "image_urls": ["https://images.corp.example/a.png"]}, "image_urls[0]"))
    assert "resolves to" in message


@pytest.mark.parametrize("value", [5, ["a.mp4"], {"path": "a.mp4"}, 1.5], ids=["int", "list", "dict", "float"])
def test_wrong_typed_output_path_is_refused_naming_the_field(value: Any) -> None:
    refuse(Bad({"output_path": value}, "output_path"))


@pytest.mark.parametrize("kind", ["existing-directory", "blank", "trailing-slash"])
def test_output_path_that_cannot_be_a_video_file_is_refused(
    kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a blank name is relative: keep whatever is probed out of the repo
    value = {"existing-directory": str(tmp_path), "blank": "   ", "trailing-slash": f"{tmp_path}/videos/"}[kind]
    refuse(Bad({"output_path": value}, "output_path"))


@pytest.mark.parametrize(
    "extra_body",
    ["duration=8", [("duration", 8)], {"start": object()}, {"seed": math.nan}, {"tags": {"a", "b"}}],
    ids=["str", "list", "object", "nan", "set"],
)
def test_extra_body_that_is_not_a_json_object_is_refused_before_the_ledger(extra_body: Any) -> None:
    refuse(Bad({"extra_body": extra_body}, "extra_body"))


@pytest.mark.parametrize("endpoint", [["videos"], {"name": "videos"}], ids=["list", "dict"])
def test_unhashable_endpoint_is_refused_naming_the_field(endpoint: Any) -> None:
    refuse(Bad({"endpoint": endpoint}, "endpoint"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", math.inf),
        ("timeout", 1e300),
        ("timeout", math.nan),
        ("poll_interval", math.nan),
        ("safety_poll_interval", math.inf),
        ("first_poll_delay", math.nan),
        ("timeout", "3600"),
        ("poll_interval", None),
    ],
)
def test_non_finite_or_non_numeric_wait_seconds_are_refused_at_parse_time(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        op(**{name: value})
