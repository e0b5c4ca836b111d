"""Fault plans: what one seed does to one DAG run (pure functions: the same seed, the same plan).

A run is one DAG run of ``width`` (2 or 3) mapped VeoOperator tasks, each polling or waiting for a
callback. Its seed draws one per-run fault aimed at one task (``target``) and, rarely, a
cluster-wide fault (a triggerer SIGKILLed while the run's jobs wait, or the api-server restarted
while its callbacks arrive). Emulator faults are aimed by ``match`` at the target's prompt marker,
and every run has an emulator of its own, so runs that share the cluster never share a fault.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from tests.reliability.campaign.dags.veo_campaign_dags import SAFETY_POLL, marker

__all__ = [
    "ANSWER_LOSING",
    "CLUSTER_FAULTS",
    "FAULTS",
    "KILL_FAULTS",
    "FaultSpec",
    "RunPlan",
    "draw",
    "emulator_faults",
    "run_key",
]

CALLBACK = "callback"
POLL = "poll"


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """One per-run fault: how often it is drawn and which wait mode its target task uses."""

    weight: int
    #: ``callback``: the target waits for callbacks; ``mostly_callback``: 3 in 4; ``poll``; ``any``.
    target_mode: str = "any"
    what: str = ""


FAULTS: dict[str, FaultSpec] = {
    "none": FaultSpec(5, what="no fault (baseline)"),
    "rate_limit_burst": FaultSpec(5, what="429 burst on every path (submits and reads)"),
    "read_500_burst": FaultSpec(4, what="500 burst on /veo/tasks"),
    "read_504_burst": FaultSpec(4, what="504 burst on /veo/tasks"),
    "submit_429": FaultSpec(3, what="429 twice on the target's submit"),
    "submit_500_no_job": FaultSpec(2, POLL, "500 on the target's submit, no job created"),
    "drop_response": FaultSpec(6, "mostly_callback", "submit answer dropped after the job was created"),
    "submit_500_after_create": FaultSpec(5, "mostly_callback", "500 on the submit after the job was created"),
    "submit_504_after_create": FaultSpec(5, "mostly_callback", "504 on the submit after the job was created"),
    "kill_before_submit": FaultSpec(6, what="SIGKILL of the task process before its submit POST"),
    "kill_during_submit": FaultSpec(7, "mostly_callback", "SIGKILL while the submit POST is held open"),
    "kill_after_submit": FaultSpec(6, "mostly_callback", "SIGKILL right after the submit answer"),
    "callback_lost": FaultSpec(5, CALLBACK, "the callback never comes"),
    "callback_duplicated": FaultSpec(5, CALLBACK, "the callback comes 2-3 times"),
    "callback_late": FaultSpec(5, CALLBACK, "the callback comes after the safety poll finished the task"),
    "callback_before_answer": FaultSpec(5, CALLBACK, "the callback comes before the submit answer"),
    "callback_forged": FaultSpec(5, CALLBACK, "forged bodies POSTed to the real signed callback URL"),
    "job_failed": FaultSpec(4, what="the target's job fails (the task must fail)"),
}
KILL_FAULTS = ("kill_before_submit", "kill_during_submit", "kill_after_submit")
#: Faults after which the target may not know whether (or which) job its submission made.
ANSWER_LOSING = (
    *KILL_FAULTS,
    "submit_500_no_job",
    "drop_response",
    "submit_500_after_create",
    "submit_504_after_create",
)
#: Cluster-wide faults and the chance that a run carries one.
CLUSTER_FAULTS: dict[str, float] = {"triggerer_kill": 0.05, "api_server_restart": 0.03}
#: Seconds the emulator holds the target's submit answer for ``kill_during_submit``.
HOLD_SECONDS = 25.0


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything a seed decides about one run."""

    seed: int
    executor: str
    modes: tuple[str, ...]
    fault: str
    target: int
    generation_seconds: float
    #: Fault parameters (burst sizes, kill scope and offset, callback copies).
    params: tuple[tuple[str, Any], ...] = ()
    cluster: str | None = None

    @property
    def width(self) -> int:
        return len(self.modes)

    @property
    def key(self) -> str:
        return run_key(self.seed)

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def describe(self) -> str:
        modes = "".join("c" if m == CALLBACK else "p" for m in self.modes)
        extra = f" +{self.cluster}" if self.cluster else ""
        return f"seed {self.seed} [{self.executor[:5]} {modes}] {self.fault}@{self.target}{extra}"


def run_key(seed: int) -> str:
    return f"s{seed}"


def _weighted(rng: random.Random, table: dict[str, FaultSpec]) -> str:
    names = sorted(table)
    return rng.choices(names, weights=[table[n].weight for n in names])[0]


def _target_mode(rng: random.Random, spec: FaultSpec, drawn: str) -> str:
    if spec.target_mode in (CALLBACK, POLL):
        return spec.target_mode
    if spec.target_mode == "mostly_callback":
        return CALLBACK if rng.random() < 0.75 else POLL
    return drawn


def _params(rng: random.Random, fault: str) -> dict[str, Any]:
    if fault.endswith("_burst"):
        return {"times": rng.randint(3, 6)}
    if fault in KILL_FAULTS:
        # ``worker``: the task process and its supervisor (the whole worker slot) die together.
        return {"scope": rng.choice(("runner", "runner", "worker")), "offset": round(rng.uniform(0.0, 0.6), 2)}
    if fault == "callback_duplicated":
        return {"copies": rng.randint(2, 3)}
    return {}


def draw(seed: int, celery_share: float = 0.2) -> RunPlan:
    """The plan of ``seed`` (``random.Random(seed)``: stable across Python versions and machines)."""
    rng = random.Random(seed)
    executor = "CeleryExecutor" if rng.random() < celery_share else "LocalExecutor"
    width = 2 if rng.random() < 0.7 else 3
    modes = [CALLBACK if rng.random() < 0.5 else POLL for _ in range(width)]
    fault = _weighted(rng, FAULTS)
    target = rng.randrange(width)
    modes[target] = _target_mode(rng, FAULTS[fault], modes[target])
    cluster = None
    roll = rng.random()
    for name, chance in sorted(CLUSTER_FAULTS.items()):
        if roll < chance:
            cluster = name
            break
        roll -= chance
    if cluster == "api_server_restart" and CALLBACK not in modes:
        modes[(target + 1) % width] = CALLBACK  # callbacks must be on their way during the restart
    # Longer than RESUME_HOLD (15 s) after the deferral, so callbacks resume tasks, as with real jobs.
    generation = round(rng.uniform(16.0, 24.0), 1)
    if fault == "callback_forged" or cluster is not None:
        generation = 25.0  # a wide window while the jobs wait
    elif fault == "callback_before_answer":
        generation = 1.5
    return RunPlan(
        seed=seed,
        executor=executor,
        modes=tuple(modes),
        fault=fault,
        target=target,
        generation_seconds=generation,
        params=tuple(sorted(_params(rng, fault).items())),
        cluster=cluster,
    )


def emulator_faults(plan: RunPlan) -> dict[str, Any]:
    """The emulator faults of the plan (the run's own emulator), aimed at the target's prompt marker."""
    aim = {"match": marker(plan.key, plan.target), "path": "/veo/videos"}
    times = plan.param("times", 1)
    faults: dict[str, Any] = {"generation_seconds": plan.generation_seconds}
    extra: dict[str, Any] = {
        "rate_limit_burst": {"rate_limit": {"times": times, "retry_after": 1}},
        "read_500_burst": {"server_error": {"times": times, "path": "/veo/tasks"}},
        "read_504_burst": {"gateway_timeout": {"times": times, "path": "/veo/tasks"}},
        "submit_429": {"rate_limit": {**aim, "times": 2, "retry_after": 1}},
        "submit_500_no_job": {"server_error": aim},
        "drop_response": {"drop_response": aim},
        "submit_500_after_create": {"server_error": {**aim, "after_create": True}},
        "submit_504_after_create": {"gateway_timeout": {**aim, "after_create": True}},
        "kill_during_submit": {"slow_response": {**aim, "seconds": HOLD_SECONDS}},
        "callback_lost": {"callback_lose": aim},
        "callback_duplicated": {"callback_duplicate": {**aim, "copies": plan.param("copies", 2)}},
        "callback_late": {"callback_delay": {**aim, "seconds": SAFETY_POLL + 10.0}},
        "callback_before_answer": {"slow_response": {**aim, "seconds": 6.0}},
        "job_failed": {"fail_jobs": aim},
    }.get(plan.fault, {})
    faults.update(extra)
    return faults
