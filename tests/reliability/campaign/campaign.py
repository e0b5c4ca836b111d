"""``run_campaign``: plans for a range of seeds, a cluster per executor, the secrets sweep, one table.

Seed ``s`` always draws the same plan (``plan.draw``); a campaign of ``runs`` runs from ``seed``
runs seeds ``seed .. seed + runs - 1``, LocalExecutor runs first, then the CeleryExecutor slice on
a cluster of its own. ``python -m tests.reliability.campaign --seed N --runs 1`` reruns seed N.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.reliability.campaign.lag import deferral_lags
from tests.reliability.campaign.plan import RunPlan, draw
from tests.reliability.campaign.report import Summary, recount_duplicates, summarize, table
from tests.reliability.campaign.runner import ClusterRun, RunResult
from tests.reliability.hostile_http import db_snapshot, hostile_burst, recorded_targets

__all__ = ["CampaignOutcome", "plans_for", "run_campaign"]

EXECUTORS = ("LocalExecutor", "CeleryExecutor")
#: Signed callback URLs (of finished tasks) each cluster's hostile burst is derived from.
HOSTILE_TARGETS = 6

try:  # the secrets sweep of tests/reliability/secrets_scan.py: a leaked token fails the campaign too
    from tests.reliability.secrets_scan import format_hits, recognisable_secrets, scan_for_secrets
except ImportError:  # not there yet: the table says "not scanned"
    scan_for_secrets = None  # type: ignore[assignment]


@dataclasses.dataclass
class CampaignOutcome:
    summary: Summary
    table: str
    results: list[RunResult]
    events: list[dict[str, Any]]


def plans_for(seeds: Sequence[int], *, celery_share: float = 0.2, executor: str | None = None) -> list[RunPlan]:
    """The plans of ``seeds``; ``executor`` forces one executor for all (the seed's draw otherwise)."""
    plans = [draw(s, celery_share) for s in seeds]
    if executor is not None:
        plans = [dataclasses.replace(p, executor=executor) for p in plans]
    return plans


def _secrets() -> dict[str, str]:
    if scan_for_secrets is not None:
        return recognisable_secrets()
    return {"token": "veo-tok-" + secrets.token_hex(16), "callback_secret": "veo-cbs-" + secrets.token_urlsafe(36)}


class _Scanner:
    """Before a cluster stops: hostile requests to its api-server, then the secrets sweep over its
    AIRFLOW_HOME and its database (so the hostile requests' traces are scanned too)."""

    def __init__(self, needles: dict[str, str]) -> None:
        self.needles = needles
        self.hits: int | None = None
        self.hostile_sent: int | None = None
        self.hostile_accepted = 0
        self.hostile_bad: list[str] = []
        self.lags: list[float] = []

    def __call__(self, cluster: Any, emulators: Sequence[Any]) -> None:
        self.lags += deferral_lags(cluster.home)
        self._hostile(cluster, emulators)
        self._scan(cluster, emulators)

    def _hostile(self, cluster: Any, emulators: Sequence[Any]) -> None:
        db = cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        signed = [(j.callback_url, j.task_id) for e in emulators for j in e.jobs if j.callback_url]
        signed = recorded_targets(db, signed)[:HOSTILE_TARGETS]
        if not signed:
            print("[campaign] hostile requests skipped: no signed callback URL of a recorded job", flush=True)
            return
        cluster.wait_healthy(180)  # a chaos restart may just have ended
        before = db_snapshot(db)
        tally = hostile_burst(cluster.url, signed, self.needles["callback_secret"], seed=len(signed))
        changed = db_snapshot(db) != before
        bad = tally.accepted + sum(1 for _, status, _ in tally.bad if status >= 500) + int(changed)
        bad += int(not tally.healthy_after)
        self.hostile_sent = (self.hostile_sent or 0) + tally.sent
        self.hostile_accepted += bad
        self.hostile_bad += [f"hostile {kind} on {path}: answered {status}" for kind, status, path in tally.bad]
        if changed:
            self.hostile_bad.append(f"hostile requests to the {cluster.executor} api-server changed the database")
        print(
            f"[campaign] hostile requests to the {cluster.executor} api-server: {tally.sent} sent, "
            f"statuses {dict(sorted(tally.statuses.items()))}, accepted {tally.accepted}, database changed {changed}",
            flush=True,
        )

    def _scan(self, cluster: Any, emulators: Sequence[Any]) -> None:
        if scan_for_secrets is None:
            print("[campaign] secrets scan skipped: tests/reliability/secrets_scan.py is not there", flush=True)
            return
        started = time.monotonic()
        texts = {f"emulator {i} access log": e.access_log_text() for i, e in enumerate(emulators)}
        hits = scan_for_secrets(
            self.needles,
            log_dirs=[cluster.home],
            db_url=cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
            texts=texts,
        )
        self.hits = (self.hits or 0) + len(hits)
        print(f"[campaign] secrets scan of {cluster.executor}: {len(hits)} hit(s) in {time.monotonic() - started:.0f}s")
        if hits:
            print(format_hits(hits), flush=True)


def run_campaign(
    plans: Sequence[RunPlan],
    *,
    concurrency: int = 14,
    workdir: Path | None = None,
    keep: bool = False,
) -> CampaignOutcome:
    """Run ``plans`` (LocalExecutor ones, then CeleryExecutor ones) and judge every run."""
    started = time.monotonic()
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="veo-campaign-"))
    needles = _secrets()
    scanner = _Scanner(needles)
    results: list[RunResult] = []
    events: list[dict[str, Any]] = []
    jobs: list[Any] = []
    try:
        for executor in EXECUTORS:
            group = [p for p in plans if p.executor == executor]
            if not group:
                continue
            run = ClusterRun(
                executor,
                group,
                base=base / executor,
                concurrency=concurrency,
                token=needles["token"],
                callback_secret=needles["callback_secret"],
            )
            try:
                results += run.run(scan=scanner)
            finally:
                jobs += run.all_jobs
                events += run.chaos.events if run.chaos else []
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    recount_duplicates(results, jobs)
    summary = summarize(results, events, time.monotonic() - started)
    summary.secret_hits = scanner.hits
    summary.hostile_sent, summary.hostile_accepted = scanner.hostile_sent, scanner.hostile_accepted
    summary.defects += scanner.hostile_bad
    summary.deferral_lags = sorted(scanner.lags)
    return CampaignOutcome(summary, table(summary), results, events)
