"""Hostile callbacks (a leaked or guessed URL is the attack surface): a property-based sweep of the receiver app with a FakePort.

Every hostile request (forged, tampered, expired, oversized, deeply nested, non-JSON, wrong
content type, wrong connection, repeated parameters, unicode ids, wrong method) is answered
4xx, stores nothing and resumes nothing; a genuinely signed replay after the task finished is
answered 200 with at most the stored callback kept and no resume; and the app still answers a valid
callback afterwards. Trickled ("slow") bodies are driven through a raw ASGI receive channel.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio.to_thread
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.callbacks.test_app import (
    FAILURE,
    KEY,
    RUNNING,
    SECRET,
    SUCCESS,
    TI_KEY,
    FakePort,
    asgi_scope,
    url_for,
)
from veo_provider.callbacks.app import create_app
from veo_provider.callbacks.decision import FORBIDDEN
from veo_provider.callbacks.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH
from veo_provider.callbacks.signing import CALLBACK_PARAMS, SIGNATURE_PARAM
from veo_provider.ledger import LEDGER_KEY, STORED_CALLBACK_KEY

#: The number of examples is the Hypothesis profile's (tests/conftest.py: a few locally, 200 in CI).
SWEEP = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OTHER_SECRET = "other-conn-secret-0123456789-abcdefghijklmn"
#: What a stored callback may hold: never the body, never a video URL.
STORED_CALLBACK_FIELDS = {"key", "task_id", "claimed_state", "body_sha256", "received_at"}
JSON = {"content-type": "application/json"}

#: Any text that survives UTF-8 (signing and URL encoding refuse lone surrogates).
TEXT = st.characters(exclude_categories=("Cs",))


@dataclass
class Hostile:
    """One hostile request and the statuses it may be answered with."""

    kind: str
    url: str
    expect: set[int]
    body: bytes | Iterator[bytes] = field(default_factory=lambda: json.dumps(SUCCESS).encode())
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    method: str = "POST"


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _with(url: str, **changes: str | None) -> str:
    params = _params(url)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return "/callback?" + urlencode(params)


def _new_port() -> FakePort:
    port = FakePort()
    port.secrets["veo_other"] = [OTHER_SECRET]  # a real connection with its own secret
    port.secrets["veo_shared"] = [SECRET]  # a connection that happens to share the secret
    return port


# ------------------------------------------------------------------------------ strategies


@st.composite
def forged(draw: st.DrawFn) -> Hostile:
    if draw(st.booleans()):
        secret = draw(st.text(TEXT, min_size=32, max_size=64).filter(lambda s: s != SECRET))
        return Hostile("forged-secret", url_for(secret=secret), {403})
    sig = draw(st.text(TEXT, max_size=64))
    return Hostile("forged-signature", _with(url_for(), **{SIGNATURE_PARAM: sig}), {403})


@st.composite
def tampered(draw: st.DrawFn) -> Hostile:
    """Any single query parameter changed, blanked or dropped."""
    url = url_for()
    name = draw(st.sampled_from(CALLBACK_PARAMS))
    original = _params(url)[name]
    how = draw(st.sampled_from(["change", "blank", "drop"]))
    if how == "change":
        value = draw(
            st.one_of(
                st.text(TEXT, min_size=1, max_size=40),
                st.integers(-(10**12), 10**12).map(str),
                st.just(original + " "),
                st.just("0" + original),
            ).filter(lambda v: v != original)
        )
    else:
        value = "" if how == "blank" else None
    return Hostile(f"tampered-{name}-{how}", _with(url, **{name: value}), {403})


@st.composite
def expired(draw: st.DrawFn) -> Hostile:
    ago = draw(st.integers(1, 10**9))
    return Hostile("expired", url_for(expires_at=int(time.time()) - ago), {403})


@st.composite
def oversized(draw: st.DrawFn) -> Hostile:
    extra = draw(st.integers(1, 64 * 1024))
    prefix, suffix = b'{"task_id": "job-1", "pad": "', b'"}'
    body = prefix + b"x" * (MAX_BODY_BYTES + extra - len(prefix) - len(suffix)) + suffix
    assert len(body) > MAX_BODY_BYTES
    if draw(st.booleans()):
        return Hostile("oversized-declared", url_for(), {413}, body=body)
    step = draw(st.sampled_from([4096, 65536, 262144]))
    chunks = iter([body[i : i + step] for i in range(0, len(body), step)])  # chunked: no Content-Length
    return Hostile("oversized-chunked", url_for(), {413}, body=chunks)


@st.composite
def deeply_nested(draw: st.DrawFn) -> Hostile:
    depth = draw(st.integers(MAX_JSON_DEPTH, 50_000))
    lists = draw(st.booleans())
    inner = b"[" * depth + b"]" * depth if lists else b'{"a": ' * depth + b"1" + b"}" * depth
    return Hostile("deeply-nested", url_for(), {400}, body=b'{"task_id": "job-1", "x": ' + inner + b"}")


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(TEXT, max_size=20))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def non_json(draw: st.DrawFn) -> Hostile:
    """Not JSON, or JSON but not an object, or an object without a usable task_id."""
    body = draw(
        st.one_of(
            st.binary(max_size=300).filter(lambda b: not _is_json_object(b)),
            st.text(TEXT, max_size=200).map(str.encode).filter(lambda b: not _is_json_object(b)),
            JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
            st.sampled_from(
                [
                    b"",
                    b"<html><body>502 Bad Gateway</body></html>",
                    b'{"task_id": "job-1"',
                    b'{"task_id": "job-1", "x": NaN}',
                    b'{"task_id": "job-1", "x": -Infinity}',
                    b'\xef\xbb\xbf{"task_id": "job-1"}',  # a UTF-8 BOM
                    b'{"task_id": "job-1"}\x00',
                    b"task_id=job-1",
                ]
            ),
            # A JSON object, but its task_id is missing, not a string, blank or too long.
            st.one_of(
                st.just({}),
                st.one_of(st.none(), st.booleans(), st.integers()).map(lambda v: {"task_id": v}),
                st.text(" \t\n", max_size=5).map(lambda v: {"task_id": v}),
                st.integers(201, 5000).map(lambda n: {"task_id": "j" * n}),
            ).map(lambda d: json.dumps(d).encode()),
        )
    )
    return Hostile("non-json", url_for(), {400}, body=body)


@st.composite
def not_a_veo_result(draw: st.DrawFn) -> Hostile:
    """A JSON object naming this job, with wrongly typed result fields."""
    name, value = draw(
        st.one_of(
            st.tuples(
                st.just("data"),
                st.one_of(
                    st.text(TEXT, max_size=10),
                    st.integers(),
                    st.dictionaries(st.text(max_size=3), st.integers(), min_size=1),
                ),
            ),
            st.tuples(
                st.just("success"),
                st.one_of(st.lists(st.integers(), min_size=1), st.sampled_from(["maybe", "2", "truthy", "oui"])),
            ),
            st.tuples(st.just("error"), st.one_of(st.integers(), st.lists(st.integers(), min_size=1))),
        )
    )
    return Hostile("not-a-veo-result", url_for(), {400}, body=json.dumps({"task_id": "job-1", name: value}).encode())


MEDIA_TYPES = st.one_of(
    st.sampled_from(
        [
            "text/plain",
            "text/html",
            "text/json",
            "application/xml",
            "application/jsonx",
            "application/json-patch+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "application/ json",
        ]
    ),
    st.from_regex(r"[a-z]{1,12}/[a-z0-9.+-]{1,20}", fullmatch=True),
).filter(lambda t: t.split(";")[0].strip().lower() != "application/json")


@st.composite
def wrong_content_type(draw: st.DrawFn) -> Hostile:
    media = draw(st.one_of(st.none(), MEDIA_TYPES))
    return Hostile("wrong-content-type", url_for(), {415}, headers={} if media is None else {"content-type": media})


@st.composite
def wrong_connection(draw: st.DrawFn) -> Hostile:
    if draw(st.booleans()):  # signed with another connection's own (valid) secret
        return Hostile("other-connection", url_for(secret=OTHER_SECRET, conn_id="veo_other"), {403})
    # the right secret, but a connection id that is not the one the task submitted through
    conn = draw(st.sampled_from(["veo_shared", "veo_missing", "VEO_DEFAULT", "veo_default "]))
    return Hostile("wrong-connection", url_for(conn_id=conn), {403})


@st.composite
def repeated_parameter(draw: st.DrawFn) -> Hostile:
    url = url_for()
    name = draw(st.sampled_from(CALLBACK_PARAMS))
    value = draw(st.one_of(st.just(_params(url)[name]), st.text(TEXT, max_size=20)))
    extra = urlencode({name: value})
    return Hostile(
        f"repeated-{name}",
        url + "&" + extra if draw(st.booleans()) else f"/callback?{extra}&{url.split('?', 1)[1]}",
        {403},
    )


IDS = st.text(TEXT, min_size=1, max_size=40)


@st.composite
def unicode_ids(draw: st.DrawFn) -> Hostile:
    """Genuinely signed URLs naming task instances that do not exist, or bodies naming other jobs."""
    what = draw(st.sampled_from(["ti", "key", "body", "forged"]))
    if what == "ti":
        ids = {"dag_id": draw(IDS), "run_id": draw(IDS), "task_id": draw(IDS)}
        if (ids["dag_id"], ids["run_id"], ids["task_id"]) == TI_KEY[:3]:
            ids["task_id"] += "\u00e9"
        return Hostile("unicode-ti", url_for(**ids), {404})
    if what == "key":
        key = draw(IDS.filter(lambda k: k != KEY))
        return Hostile("unicode-key", url_for(submission_key=key), {404})
    if what == "body":
        job = draw(IDS.filter(lambda j: j != "job-1"))
        expect = {409} if job.strip() and len(job) <= 200 else {400}
        return Hostile("unicode-body-task-id", url_for(), expect, body=json.dumps({**SUCCESS, "task_id": job}).encode())
    sig = draw(IDS)
    return Hostile("unicode-signature", _with(url_for(dag_id=draw(IDS)), **{SIGNATURE_PARAM: sig}), {403})


@st.composite
def wrong_method(draw: st.DrawFn) -> Hostile:
    return Hostile("wrong-method", url_for(), {405}, method=draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE"])))


HOSTILE = st.one_of(
    forged(),
    tampered(),
    expired(),
    oversized(),
    deeply_nested(),
    non_json(),
    not_a_veo_result(),
    wrong_content_type(),
    wrong_connection(),
    repeated_parameter(),
    unicode_ids(),
    wrong_method(),
)


def _send(client: TestClient, h: Hostile) -> httpx.Response:
    return client.request(h.method, h.url, content=h.body, headers=h.headers)


def _assert_still_answers(client: TestClient, port: FakePort) -> None:
    """A valid callback after the hostile ones resumes the task (its ledger names the job: nothing stored)."""
    r = client.post(url_for(), json=SUCCESS)
    assert (r.status_code, r.json()) == (200, {"status": "resumed", "resumed": True})
    assert port.stores == [] and len(port.resumes) == 1


# ----------------------------------------------------------------------------- properties


@SWEEP
@given(requests=st.lists(HOSTILE, min_size=1, max_size=4))
def test_hostile_callbacks_are_4xx_store_nothing_and_leave_the_app_healthy(requests: list[Hostile]) -> None:
    port = _new_port()
    before = copy.deepcopy(port.tis)
    client = TestClient(create_app(port))
    for h in requests:
        event(h.kind)
        r = _send(client, h)
        assert r.status_code in h.expect, f"{h.kind}: {r.status_code} {r.text[:200]}"
        assert 400 <= r.status_code < 500
        assert port.stores == [] and port.resumes == [], f"{h.kind} changed the task's state"
    assert port.tis == before, "no task state changed"
    _assert_still_answers(client, port)


@SWEEP
@given(name=st.sampled_from(CALLBACK_PARAMS), value=st.text(TEXT, max_size=60), drop=st.booleans())
def test_any_single_changed_query_parameter_is_403(name: str, value: str, drop: bool) -> None:
    url = url_for()
    if not drop and value == _params(url)[name]:
        value += "x"
    port = _new_port()
    client = TestClient(create_app(port))
    r = client.post(_with(url, **{name: None if drop else value}), json=SUCCESS)
    assert (r.status_code, r.json()) == (403, {"detail": FORBIDDEN})
    port.assert_untouched()
    _assert_still_answers(client, port)


#: How the task instance looks when a genuinely signed URL is replayed after the task moved on.
FINISHED = ["success", "failed", "up_for_retry", "running", "queued", None, "deferred-other-trigger", "retried-anew"]
REPLAYS = st.one_of(
    st.sampled_from([SUCCESS, FAILURE, RUNNING]),
    st.builds(lambda t: {**SUCCESS, "trace_id": t}, st.text(TEXT, max_size=30)),
    st.builds(
        lambda m: {**FAILURE, "error": {"code": "forbidden", "message": "FORGED " + m}}, st.text(TEXT, max_size=30)
    ),
)


def _finish(port: FakePort, how: str | None) -> None:
    ti = port.tis[TI_KEY]
    if how == "deferred-other-trigger":
        ti["state"], ti["trigger"] = "deferred", ("airflow.triggers.temporal.DateTimeTrigger", {"submission_key": KEY})
    elif how == "retried-anew":  # a later try paid for a new job: new key, deferred on it
        new = "cd" * 16
        ti["state"] = "deferred"
        ti["store"][LEDGER_KEY] = {**ti["store"][LEDGER_KEY], "key": new, "task_id": "job-2"}
        ti["trigger"] = (ti["trigger"][0], {**ti["trigger"][1], "submission_key": new, "task_id": "job-2"})
    else:
        ti["state"], ti["trigger"] = how, (None, None)


@SWEEP
@given(how=st.sampled_from(FINISHED), replays=st.lists(st.tuples(REPLAYS, st.booleans()), min_size=1, max_size=3))
def test_signed_replay_after_the_task_finished_changes_nothing_but_the_stored_callback(
    how: str | None, replays: list[tuple[dict[str, Any], bool]]
) -> None:
    port = _new_port()
    client = TestClient(create_app(port))
    url = url_for()
    assert client.post(url, json=SUCCESS).json() == {"status": "resumed", "resumed": True}
    _finish(port, how)
    ledger = copy.deepcopy(port.tis[TI_KEY]["store"][LEDGER_KEY])
    stores = len(port.stores)
    for body, fresh_url in replays:
        r = client.post(url_for() if fresh_url else url, json=body)
        if how == "retried-anew":
            assert r.status_code == 404, "a replay for an earlier try's submission is stale"
        else:
            assert r.status_code == 200 and r.json()["resumed"] is False, r.text
    assert len(port.resumes) == 1, "no task that is not deferred on this submission is resumed"
    assert port.tis[TI_KEY]["store"][LEDGER_KEY] == ledger, "only the worker writes the ledger"
    if how == "retried-anew":
        assert len(port.stores) == stores
    for target, delivery in port.stores:
        assert set(delivery) <= STORED_CALLBACK_FIELDS and delivery["key"] == KEY and target.submission_key == KEY
        assert "FORGED" not in json.dumps(delivery) and "cdn.example" not in json.dumps(delivery)
    assert set(port.tis[TI_KEY]["store"]) <= {LEDGER_KEY, STORED_CALLBACK_KEY}


@SWEEP
@given(dag_id=IDS, run_id=IDS, task_id=IDS, map_index=st.integers(-1, 10_000))
def test_unicode_ids_round_trip_to_their_own_task_instance(
    dag_id: str, run_id: str, task_id: str, map_index: int
) -> None:
    """A task instance whose ids are any unicode gets its callback; a neighbour's URL does not reach it."""
    port = _new_port()
    key = (dag_id, run_id, task_id, map_index)
    port.add_ti(key)
    client = TestClient(create_app(port))
    ids = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
    r = client.post(url_for(**ids), json=SUCCESS)
    assert (r.status_code, r.json()) == (200, {"status": "resumed", "resumed": True})
    [(target, _)] = port.resumes
    assert (target.dag_id, target.run_id, target.task_id, target.map_index) == key
    assert port.tis[key]["state"] == "scheduled"
    if key != TI_KEY:
        assert port.tis[TI_KEY]["state"] == "deferred", "no other task instance was touched"


# ---------------------------------------------------------------------------- slow bodies


async def _asgi_post(
    app: Any, url: str, chunks: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes, int]:
    """(status, body, chunks the app pulled) of a POST whose body arrives as ``chunks`` produce it."""
    sent: list[MutableMapping[str, Any]] = []
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(asgi_scope(url, headers or [(b"content-type", b"application/json")]), receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, pulled


async def _trickle(total: int, step: int, pause: float) -> AsyncIterator[bytes]:
    yield b'{"task_id": "job-1", "pad": "'
    sent = 0
    while sent < total:
        await asyncio.sleep(pause)
        yield b"x" * step
        sent += step


async def test_a_trickled_body_is_capped_and_stores_nothing_while_others_are_served() -> None:
    """A body dripped in 16 KiB every few ms, no Content-Length: cut at the cap, 413, nothing stored;
    a valid callback for another task is answered meanwhile, even with one worker thread."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = 1  # this test's loop only
    port = _new_port()
    other = ("videos", "manual__1", "other", -1)
    port.add_ti(other)
    app = create_app(port)
    step = 16 * 1024
    slow = asyncio.create_task(_asgi_post(app, url_for(), _trickle(4 * MAX_BODY_BYTES, step, 0.01)))
    await asyncio.sleep(0.05)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        start = time.monotonic()
        fast = await client.post(url_for(task_id="other"), json=SUCCESS)
        assert fast.json() == {"status": "resumed", "resumed": True}
        assert time.monotonic() - start < 1.0 and not slow.done(), "served while the slow body drips"
    status, body, pulled = await slow
    assert status == 413 and b"larger than" in body
    assert pulled <= MAX_BODY_BYTES // step + 2, "the reader stopped at the cap, not at the end of the body"
    assert port.stores == [] and [t.task_id for t, _ in port.resumes] == ["other"]
    assert port.tis[TI_KEY]["state"] == "deferred"


async def test_a_forged_slow_body_is_refused_without_reading_it() -> None:
    port = _new_port()

    async def never_ending() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.5)
            yield b"x"

    status, _, pulled = await asyncio.wait_for(
        _asgi_post(create_app(port), url_for(secret="x" * 40), never_ending()), timeout=5
    )
    assert (status, pulled) == (403, 0), "an unauthenticated body is never read"
    port.assert_untouched()


async def test_a_genuine_slow_but_small_body_is_accepted() -> None:
    """Slowness alone is not an attack: a small valid body dripped byte-wise still wakes the task."""
    port = _new_port()
    raw = json.dumps(SUCCESS).encode()

    async def drip() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 8):
            await asyncio.sleep(0.002)
            yield raw[i : i + 8]

    status, body, _ = await _asgi_post(create_app(port), url_for(), drip())
    assert status == 200 and json.loads(body) == {"status": "resumed", "resumed": True}


# ------------------------------------------------------------- regressions found by this sweep (fixed)


@pytest.mark.parametrize("declared", [b"9" * 5000, "\u00b2".encode("latin-1")], ids=["5000-digits", "superscript-two"])
async def test_a_malformed_content_length_is_400_not_500(declared: bytes) -> None:
    port = _new_port()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"task_id": "job-1"}'

    headers = [(b"content-type", b"application/json"), (b"content-length", declared)]
    status, _, _ = await _asgi_post(create_app(port), url_for(), body(), headers)
    assert status == 400
    port.assert_untouched()
