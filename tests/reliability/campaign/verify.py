"""What happened to each task of a run, judged only from what the API (emulator) and Airflow kept.

Per task: the jobs the emulator created for its prompt marker (jobs paid), its final state, its
XCom, its ledger (task state store) and its file. The verdict:

* ``ok``: succeeded with an XCom naming its one succeeded job and a complete file.
* ``expected_failure``: failed because its job failed (the ``job_failed`` fault).
* ``uncertain_by_design``: a task whose submission answer was lost (the ledger still says
  ``submitting``) in poll mode, or in callback mode when the job's callback never reached the
  receiver either (or no job was made): it fails naming the submission key and pays nothing twice,
  as documented (``on_uncertain_submission="fail"``); nothing else can tell which job it made.
  Only a task a fault aimed an answer loss at (a dropped or failed answer, a killed worker) may
  end like this: for any other, a ledger left at ``submitting`` means an answer received and lost.
* ``lost``: succeeded without its XCom or file (or with another job's), or failed while its job
  succeeded (and, in callback mode, its callback was delivered).
* ``hung``: not finished by the run's deadline.
* ``unexpected_failure``: failed for any other reason.

``duplicates`` counts jobs beyond the first that did not fail (a failed job is not billed, and a
retry after one may submit again).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from veo_provider.testing.emulator import Job

__all__ = ["OUTCOMES", "TaskFacts", "TaskVerdict", "classify", "loads"]

OUTCOMES = ("ok", "expected_failure", "uncertain_by_design", "lost", "hung", "unexpected_failure")
TERMINAL = {"success", "failed", "upstream_failed", "skipped", "removed"}


def loads(value: Any) -> Any:
    """A value Airflow stored as JSON, maybe JSON-encoded once more (XCom, task state store)."""
    for _ in range(2):
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except ValueError:
                return value
    return value


@dataclasses.dataclass
class TaskFacts:
    index: int
    mode: str
    state: str | None
    try_number: int
    xcom: dict[str, Any] | None
    ledger: dict[str, Any] | None
    file_size: int | None
    jobs: list[Job]
    #: Tries Airflow's scheduler failed as "state changed externally" (its resume race, a killed worker).
    state_mismatches: int = 0


@dataclasses.dataclass
class TaskVerdict:
    index: int
    mode: str
    outcome: str
    reason: str
    paid: int
    duplicates: int
    tries: int
    state_mismatches: int = 0


def _success_problem(facts: TaskFacts, expected_size: int) -> str | None:
    """Why a succeeded task lost its result, or None."""
    done = {j.task_id: j for j in facts.jobs if j.state() == "succeeded"}
    x = facts.xcom
    if not isinstance(x, dict):
        return "succeeded without its XCom"
    job = done.get(str(x.get("task_id")))
    if job is None:
        return f"XCom names job {x.get('task_id')}, not a succeeded job of this task"
    if x.get("video_url") != job.video_url:
        return f"XCom video_url {x.get('video_url')!r} is not the job's"
    if facts.file_size is None:
        return "succeeded without its file"
    if facts.file_size != expected_size:
        return f"file has {facts.file_size} bytes, not {expected_size}"
    return None


def _delivered(job: Job) -> bool:
    """Did any copy of the job's callback reach the receiver (a 2xx answer)?"""
    return any(200 <= (c.get("status") or 0) < 300 for c in job.callbacks)


def _failure_verdict(facts: TaskFacts, job_failed_expected: bool) -> tuple[str, str]:
    succeeded = [j for j in facts.jobs if j.state() == "succeeded"]
    failed = [j for j in facts.jobs if j.failure is not None]
    ledger = facts.ledger or {}
    uncertain = ledger.get("state") == "submitting" and not ledger.get("task_id")
    if failed and job_failed_expected and not succeeded:
        return "expected_failure", "its job failed"
    if uncertain and facts.mode == "poll":
        what = "a job was made" if succeeded else "no job was made"
        return "uncertain_by_design", f"submission answer lost in poll mode ({what})"
    if uncertain and not any(_delivered(j) for j in facts.jobs):
        what = "its callback was lost too" if succeeded else "no job was made"
        return "uncertain_by_design", f"submission answer lost in callback mode and {what}"
    why = f"ledger {ledger.get('state')}, {facts.state_mismatches} tries failed by Airflow as 'state mismatch'"
    if succeeded:
        return "lost", f"failed while its job {succeeded[0].task_id} succeeded ({why})"
    return "unexpected_failure", f"failed with {len(facts.jobs)} job(s) ({why})"


def classify(
    facts: TaskFacts, *, expected_size: int, job_failed_expected: bool, answer_lost: bool = True
) -> TaskVerdict:
    """The verdict on one task (see the module docstring)."""
    not_failed = [j for j in facts.jobs if j.failure is None]
    duplicates = max(0, len(not_failed) - 1)
    if facts.state not in TERMINAL:
        outcome, reason = "hung", f"still {facts.state} at the deadline"
    elif facts.state == "success":
        problem = _success_problem(facts, expected_size)
        outcome, reason = ("lost", problem) if problem else ("ok", "")
    else:
        outcome, reason = _failure_verdict(facts, job_failed_expected)
        if outcome == "uncertain_by_design" and not answer_lost:
            outcome, reason = "lost", "no fault lost its answer, yet its job id was never recorded"
    return TaskVerdict(
        index=facts.index,
        mode=facts.mode,
        outcome=outcome,
        reason=reason,
        paid=len(facts.jobs),
        duplicates=duplicates,
        tries=facts.try_number,
        state_mismatches=facts.state_mismatches,
    )
