"""The campaign's one table: runs, faults injected by kind, and what must stay zero."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

from tests.reliability.campaign.dags.veo_campaign_dags import marker
from tests.reliability.campaign.lag import describe_lags
from tests.reliability.campaign.runner import RunResult
from veo_provider.resume_hold import RESUME_HOLD
from veo_provider.testing.emulator import Job

__all__ = ["MUST_BE_ZERO", "Summary", "recount_duplicates", "summarize", "table"]

#: The rows that fail the campaign when not zero.
MUST_BE_ZERO = ("duplicates", "lost", "hung", "unexpected failures", "forged callbacks with an effect")


@dataclasses.dataclass
class Summary:
    runs: int = 0
    runs_by_executor: dict[str, int] = dataclasses.field(default_factory=dict)
    tasks: int = 0
    jobs_paid: int = 0
    jobs_failed: int = 0
    planned: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    injected: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    duplicates: int = 0
    forged_with_effect: int = 0
    retried_tasks: int = 0
    state_mismatches: int = 0
    triggers_adopted: str = "-"
    secret_hits: int | None = None
    #: Hostile requests sent to the clusters' api-servers at the end (``hostile_http``), and how
    #: many were accepted (2xx), failed it (5xx) or changed the database: all must be 0.
    hostile_sent: int | None = None
    hostile_accepted: int = 0
    wall_seconds: float = 0.0
    failing_seeds: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    #: One line per defect (seed, task, verdict, reason), printed after the table so that the
    #: tail of a CI log says what went wrong, not only which seed to rerun.
    defects: list[str] = dataclasses.field(default_factory=list)
    #: Seconds from each deferral to the scheduler's processing of its executor event (``lag``).
    deferral_lags: list[float] = dataclasses.field(default_factory=list)

    def zero_rows(self) -> dict[str, int]:
        return {
            "duplicates": self.duplicates,
            "lost": self.outcomes["lost"],
            "hung": self.outcomes["hung"],
            "unexpected failures": self.outcomes["unexpected_failure"],
            "forged callbacks with an effect": self.forged_with_effect,
        }

    @property
    def passed(self) -> bool:
        return not any(self.zero_rows().values()) and not self.secret_hits and not self.hostile_accepted


def recount_duplicates(results: Sequence[RunResult], all_jobs: Sequence[Job]) -> None:
    """Count every job made for a task, also those that came after its run was judged (a late resend)."""
    by_prompt: dict[str, list[Job]] = collections.defaultdict(list)
    seen: set[str] = set()
    for job in all_jobs:
        if job.task_id not in seen:
            seen.add(job.task_id)
            by_prompt[str(job.request.get("prompt", ""))].append(job)
    for result in results:
        for verdict in result.verdicts:
            mark = marker(result.plan.key, verdict.index)
            jobs = [j for prompt, js in by_prompt.items() if mark in prompt for j in js]
            verdict.paid = max(verdict.paid, len(jobs))
            verdict.duplicates = max(verdict.duplicates, len([j for j in jobs if j.failure is None]) - 1)


def summarize(results: Sequence[RunResult], events: Sequence[dict[str, Any]], wall: float) -> Summary:
    s = Summary(runs=len(results), wall_seconds=wall)
    s.runs_by_executor = dict(collections.Counter(r.plan.executor for r in results))
    for r in results:
        s.planned[r.plan.fault] += 1
        if r.plan.cluster:
            s.planned[r.plan.cluster] += 1
        s.injected.update(r.injected)
        s.forged_with_effect += r.forged_ok is False
        s.jobs_failed += sum(1 for j in r.jobs if j.failure is not None)
        for v in r.verdicts:
            s.tasks += 1
            s.jobs_paid += v.paid
            s.duplicates += v.duplicates
            s.outcomes[v.outcome] += 1
            s.retried_tasks += v.tries > 1
            s.state_mismatches += v.state_mismatches
            if v.outcome in ("lost", "hung", "unexpected_failure") or v.duplicates:
                s.failing_seeds.setdefault(v.outcome if not v.duplicates else "duplicate", []).append(r.plan.seed)
                s.defects.append(
                    f"{r.plan.describe()}: task {v.index} ({v.mode}) {v.outcome}"
                    f"{f', {v.duplicates} duplicate(s)' if v.duplicates else ''}: {v.reason or '-'}"
                    f" (tries {v.tries}, state mismatches {v.state_mismatches}, paid {v.paid})"
                )
        if r.forged_ok is False:
            s.defects.append(f"{r.plan.describe()}: a forged callback had an effect ({'; '.join(r.notes)})")
    kills = [e for e in events if e.get("kind") == "triggerer_kill" and "victim" in e]
    if kills:
        adopted = sum(1 for e in kills if e.get("adopted_after_s") is not None)
        s.triggers_adopted = f"{adopted}/{len(kills)}"
    return s


def table(s: Summary) -> str:
    """The one table, as Markdown (it goes into docs/reliability.md as measured)."""
    rows: list[tuple[str, str]] = [
        ("runs", f"{s.runs} ({', '.join(f'{k}: {v}' for k, v in sorted(s.runs_by_executor.items()))})"),
        ("tasks", str(s.tasks)),
        ("jobs paid", f"{s.jobs_paid} (of which failed jobs: {s.jobs_failed})"),
    ]
    for kind in sorted(set(s.planned) - {"none"}):
        rows.append((f"fault: {kind}", f"{s.injected[kind]} injected / {s.planned[kind]} planned"))
    rows += [
        ("runs without a per-run fault", str(s.planned["none"])),
        ("triggerer kills whose triggers the other triggerer took over", s.triggers_adopted),
        ("tasks that needed a retry", str(s.retried_tasks)),
        ("tries Airflow failed as 'state mismatch' (its resume race; killed workers)", str(s.state_mismatches)),
        ("scheduler lag after a deferral (p50 / p90 / max)", describe_lags(s.deferral_lags, RESUME_HOLD)),
        ("tasks ok", str(s.outcomes["ok"])),
        ("expected failures (job failed)", str(s.outcomes["expected_failure"])),
        (
            "uncertain by design (answer lost: poll mode, or its callback lost too)",
            str(s.outcomes["uncertain_by_design"]),
        ),
    ]
    for name, value in s.zero_rows().items():
        rows.append((f"**{name}**", f"**{value}**"))
    rows.append(("**secret hits**", "not scanned" if s.secret_hits is None else f"**{s.secret_hits}**"))
    hostile = "not sent" if s.hostile_sent is None else f"**{s.hostile_accepted}** of {s.hostile_sent}"
    rows.append(("**hostile requests accepted** (callbacks and spending-cap requests)", hostile))
    rows.append(("wall time", f"{s.wall_seconds / 60:.1f} min"))
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'':{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)
