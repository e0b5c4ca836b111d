"""DAGs of the cluster benchmarks (figures 1-3); BENCH_N tasks each, read at parse time."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, task

from veo_provider.operators.veo import VeoOperator

N = int(os.environ.get("BENCH_N", "10"))
#: Far enough that DateTimeTrigger sleeps in its longest (1 h) steps for the whole benchmark.
FAR = "2099-01-01T00:00:00+00:00"
PROMPTS = [f"benchmark video {i}, {{{{ run_id }}}}" for i in range(N)]
# No retries: a failed resume must show as a failure, not be hidden by a second try.
COMMON: dict[str, Any] = {"model": "veo3", "retries": 0, "timeout": 7200}


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, max_active_tasks=N + 2)


# Figure 1, the floor: Airflow's cheapest deferral, from the worker like VeoOperator's.
with _dag("bench_floor"):
    DateTimeSensorAsync.partial(task_id="wait").expand(target_time=[FAR] * N)

# Figure 1: poll mode with the operator's defaults (poll_interval 15 s).
with _dag("bench_poll"):
    VeoOperator.partial(task_id="generate", wait_mode="poll", **COMMON).expand(prompt=PROMPTS)

# Figure 2: callback mode; the safety net is a day away so only the callbacks resume.
with _dag("bench_storm"):
    VeoOperator.partial(
        task_id="generate", veo_conn_id="veo_callback", wait_mode="callback", safety_poll_interval=86400, **COMMON
    ).expand(prompt=[*PROMPTS, "the warm-up callback's video"])  # one more: see bench_callbacks.run


@task
def downstream() -> None:
    """Does nothing: its start_date is what figure 3 measures."""


# Figure 3: job finished -> downstream task running, in each mode.
for mode in ("callback", "poll"):
    with _dag(f"bench_latency_{mode}"):
        (
            VeoOperator(
                task_id="generate",
                prompt="latency, {{ run_id }}",
                veo_conn_id="veo_callback",
                wait_mode=mode,
                **COMMON,
            )
            >> downstream()
        )
