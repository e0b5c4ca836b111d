"""DAGs for the integration tests (unhappy paths of real Airflow runs against the emulator)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from veo_provider.operators.veo import VeoOperator

OUT = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-it")
FAST = {"poll_interval": 0.5, "first_poll_delay": 0.2}


def _dag(dag_id: str, **default_args) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        default_args={"retry_delay": timedelta(seconds=1), **default_args},
    )


# An API-side failure must fail at once: retries=2 must not be used.
with _dag("veo_it_api_failure", retries=2):
    VeoOperator(task_id="generate", prompt="{{ dag_run.conf.get('prompt', 'a red kite') }}", model="veo3", **FAST)

# The first try times out while the job still runs; the retry resumes the same job.
with _dag("veo_it_timeout_resume", retries=4):
    VeoOperator(task_id="generate", prompt="a slow sunrise", model="veo3", timeout=1.5, **FAST)

# The download fails on the first try; the retry downloads the same job's video again.
with _dag("veo_it_download_retry", retries=1):
    VeoOperator(
        task_id="generate", prompt="a lighthouse at night", model="veo3", output_path=OUT + "/retry.mp4", **FAST
    )

# Not deferrable: the worker runs the same wait loop.
with _dag("veo_it_not_deferrable"):
    VeoOperator(task_id="generate", prompt="a fox in snow", model="veo3", deferrable=False, **FAST)

# Spending cap: three mapped tasks, written as the docs show (the connection's daily_job_limit
# comes from the test); one paid job's download fails once, and its retry must not count again.
with _dag("veo_it_capped", retries=1):
    VeoOperator.partial(
        task_id="generate",
        model="veo3",
        output_path=OUT + "/capped/{{ run_id | replace(':', '_') }}-{{ ti.map_index }}.mp4",
        **FAST,
    ).expand(prompt=["a red kite", "a blue kite", "a green kite"])

# The per-run cap: two tasks, one job per DAG run.
with _dag("veo_it_run_capped"):
    for name in ("first", "second"):
        VeoOperator(task_id=name, prompt=f"the {name} shot", model="veo3", max_jobs_per_dag_run=1, **FAST)

# The connection exists only in the metadata DB (`airflow connections add`, no AIRFLOW_CONN_*):
# the inline trigger and the in-worker wait must read it as the task did.
with _dag("veo_it_db_connection", retries=0):
    VeoOperator(task_id="deferred", prompt="a kite", model="veo3", veo_conn_id="veo_db_only", **FAST)
    VeoOperator(task_id="in_worker", prompt="a boat", model="veo3", veo_conn_id="veo_db_only", deferrable=False, **FAST)

# The API goes down for 75 s while the job runs (every status read answers 500): the wait rides it
# out with the operator's own defaults, and nobody has to clear anything.
with _dag("veo_it_outage"):
    VeoOperator(task_id="generate", prompt="a storm over the sea", model="veo3", poll_interval=5, first_poll_delay=1)
