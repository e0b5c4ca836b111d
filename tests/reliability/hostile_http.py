"""Hostile requests against a live api-server's ``/veo`` routes (the receiver app's sweep, over real HTTP).

``hostile_burst`` takes genuinely signed callback URLs (the emulator's jobs hold them), derives
seeded hostile variants of each (forged, tampered, unsigned, expired, oversized, deeply nested,
non-JSON, wrong content type, wrong connection, repeated parameter, wrong method, wrong job) plus
forged spending-cap requests (no credential, or one the deployment did not sign), and counts how each was answered. ``db_snapshot`` reads what a
hostile request could have changed (task states, the task state store, the cap's Variables), so
a caller compares it before and after. The property-based sweep of the same kinds is
``test_hostile_callbacks.py`` (receiver app, many more examples); this is the same attack on
Airflow's real api-server, its middleware and its database.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.reliability.campaign.verify import loads
from veo_provider.callbacks.signing import CallbackTarget, sign_callback_url
from veo_provider.models.records import LedgerEntry
from veo_provider.spending.credential import issue_credential
from veo_provider.spending.rules import CapRequest

__all__ = ["HostileTally", "db_snapshot", "hostile_burst", "recorded_targets"]

_TAMPERABLE = ("dag_id", "run_id", "task_id", "map_index", "key", "conn_id", "exp")


@dataclass
class HostileTally:
    sent: int = 0
    accepted: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    #: (kind, status, url path) of every hostile request answered 2xx or 5xx.
    bad: list[tuple[str, int, str]] = field(default_factory=list)
    healthy_after: bool = False


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _target(params: dict[str, str], **changes: Any) -> CallbackTarget:
    fields = {
        "dag_id": params["dag_id"],
        "run_id": params["run_id"],
        "task_id": params["task_id"],
        "map_index": int(params["map_index"]),
        "submission_key": params["key"],
        "conn_id": params["conn_id"],
        "expires_at": int(params["exp"]),
    }
    return CallbackTarget(**{**fields, **changes})


def _variants(url: str, secret: str, job_id: str, rnd: random.Random) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(kind, url, body, headers) of each hostile request derived from one genuine URL."""
    base = url.split("/callback?", 1)[0]
    params = _params(url)
    genuine = json.dumps({"success": True, "task_id": job_id, "data": [{"state": "succeeded"}]}).encode()
    as_json = {"content-type": "application/json"}
    forged_secret = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(48))
    tampered = dict(params)
    name = rnd.choice(_TAMPERABLE)
    tampered[name] = tampered[name] + "1" if name in ("map_index", "exp") else tampered[name] + "x"
    unsigned = {k: v for k, v in params.items() if k != "sig_token"}
    deep: Any = {"task_id": job_id}
    for _ in range(200):
        deep = {"data": [deep]}
    return [
        ("forged", sign_callback_url(base, _target(params), forged_secret), genuine, as_json),
        (f"tampered-{name}", f"{base}/callback?{urlencode(tampered)}", genuine, as_json),
        ("unsigned", f"{base}/callback?{urlencode(unsigned)}", genuine, as_json),
        (
            "expired",
            sign_callback_url(base, _target(params, expires_at=int(time.time()) - 60), secret),
            genuine,
            as_json,
        ),
        ("wrong-connection", sign_callback_url(base, _target(params, conn_id="veo_default"), secret), genuine, as_json),
        ("repeated-parameter", f"{url}&task_id={params['task_id']}x", genuine, as_json),
        ("oversized", url, b'{"task_id": "' + b"x" * 1_100_000 + b'"}', as_json),
        ("deeply-nested", url, json.dumps(deep).encode(), as_json),
        ("non-json", url, b"\xff\xfe not json {", as_json),
        ("wrong-content-type", url, genuine, {"content-type": "text/plain"}),
        ("wrong-job", url, genuine.replace(job_id.encode(), b"not-" + job_id.encode()), as_json),
    ]


def _spending_cap_forgeries(
    urls: list[str], rnd: random.Random
) -> list[tuple[str, dict[str, Any] | bytes, dict[str, str]]]:
    """Spending-cap requests a stranger can make: no credential (401), or one not signed by the deployment (403)."""
    out: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = [("cap-malformed", b"{not json", {})]
    stranger = rnd.randbytes(32)  # not the deployment's key
    for url in urls:
        p = _params(url)
        ti = {"dag_id": p["dag_id"], "run_id": p["run_id"], "task_id": p["task_id"], "map_index": int(p["map_index"])}
        out.append(("cap-forged-key", {"action": "reserve", **ti, "key": f"{rnd.getrandbits(64):016x}"}, {}))
        out.append(("cap-finished-task", {"action": "reserve", **ti, "key": p["key"]}, {}))
        out.append(("cap-forged-release", {"action": "release", **ti, "key": p["key"]}, {}))
        out.append(("cap-huge-map-index", {"action": "reserve", **ti, "map_index": 2**70, "key": p["key"]}, {}))
        request = CapRequest(action="reserve", **ti, key=p["key"], ti_id=f"{rnd.getrandbits(64):016x}")
        for kind, token in (
            ("cap-foreign-credential", issue_credential(request, stranger)),
            ("cap-expired-foreign-credential", issue_credential(request, stranger, now=time.time() - 86400)),
            ("cap-garbage-credential", f"v1.{rnd.getrandbits(128):032x}.AAAA"),
        ):
            out.append((kind, {}, {"Authorization": f"Bearer {token}"}))
    return out


def hostile_burst(api_url: str, signed: list[tuple[str, str]], secret: str, *, seed: int) -> HostileTally:
    """Send every hostile variant of each (signed callback URL, job id); every answer must be 4xx.

    The URLs should belong to finished tasks, so that nothing legitimate changes meanwhile.
    """
    rnd = random.Random(seed)
    tally = HostileTally()

    def record(kind: str, response: httpx.Response, path: str) -> None:
        tally.sent += 1
        tally.by_kind[kind] += 1
        tally.statuses[response.status_code] += 1
        if not 400 <= response.status_code < 500:
            tally.accepted += response.status_code < 400
            tally.bad.append((kind, response.status_code, path))

    with httpx.Client(timeout=60) as client:
        for url, job_id in signed:
            for kind, hostile_url, body, headers in _variants(url, secret, job_id, rnd):
                record(kind, client.post(hostile_url, content=body, headers=headers), urlsplit(hostile_url).path)
            record("wrong-method", client.get(url), "/veo/callback")
        for kind, cap_body, cap_headers in _spending_cap_forgeries([u for u, _ in signed], rnd):
            kw: dict[str, Any] = {"json": cap_body} if isinstance(cap_body, dict) else {"content": cap_body}
            record(kind, client.post(f"{api_url}/veo/quota", headers=cap_headers, **kw), "/veo/quota")
        health = client.get(f"{api_url}/api/v2/monitor/health")
        tally.healthy_after = health.status_code == 200 and health.json()["metadatabase"]["status"] == "healthy"
    return tally


def _connect(db_url: str) -> Any:
    import psycopg2

    return psycopg2.connect(db_url.replace("postgresql+psycopg2://", "postgresql://"))


def recorded_targets(db_url: str, signed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (signed URL, job id) pairs whose task's ledger records that job.

    Only there must a body naming another job be refused (409). A lost submission's ledger names no
    job: a body on its genuine URL is stored as a claim, as a genuine late callback must be, and the
    operator confirms it with the API before adopting the job (``job_named_by_callback``).
    """
    conn = _connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT dag_id, run_id, task_id, map_index, value FROM task_state_store WHERE key = 'veo_submission'"
            )
            known = {(r[0], r[1], r[2], int(r[3])): loads(r[4]) for r in cur.fetchall()}
    finally:
        conn.close()
    out = []
    for url, job_id in signed:
        p = _params(url)
        ledger = known.get((p["dag_id"], p["run_id"], p["task_id"], int(p["map_index"])))
        try:
            recorded = LedgerEntry.model_validate(ledger).veo_task_id
        except ValueError:  # no ledger, or not one
            continue
        if recorded == job_id:
            out.append((url, job_id))
    return out


def db_snapshot(db_url: str) -> dict[str, Any]:
    """What a hostile request could change: task states and tries, the task state store, the cap's Variables."""
    queries = {
        "task_instance": "SELECT dag_id, run_id, task_id, map_index, state, try_number, trigger_id FROM task_instance",
        "task_state_store": "SELECT * FROM task_state_store",
        "variable": "SELECT key, val FROM variable WHERE key LIKE 'veo_quota:%%'",
    }
    conn = _connect(db_url)
    try:
        with conn.cursor() as cur:
            out = {}
            for name, sql in queries.items():
                cur.execute(sql)
                out[name] = sorted(repr(row) for row in cur.fetchall())
            return out
    finally:
        conn.close()
