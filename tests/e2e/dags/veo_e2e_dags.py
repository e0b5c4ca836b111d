"""DAGs for the end-to-end tests (real scheduler, triggerer, api-server)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from veo_provider.operators.veo import VeoOperator

OUT = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-e2e")
FAST = {"poll_interval": 0.5, "first_poll_delay": 0.2}


def _dag(dag_id: str, **default_args) -> DAG:
    return DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        default_args={"retry_delay": timedelta(seconds=1), **default_args},
    )


# The worker waits in-process, so killing it mid-wait is a real crash after the submission.
with _dag("veo_e2e_crash", retries=1):
    VeoOperator(
        task_id="generate",
        prompt="a glass of water on a windowsill, {{ run_id }}",
        model="veo3",
        deferrable=False,
        output_path=OUT + "/crash/{{ run_id | replace(':', '_') }}.mp4",
        **FAST,
    )

# Callback mode: the receiver in the api-server resumes the task; polling is only the safety net.
with _dag("veo_e2e_callback", retries=2):
    VeoOperator(
        task_id="generate",
        prompt="a kite over a beach, {{ run_id }}",
        model="veo3",
        veo_conn_id="veo_callback",
        wait_mode="callback",
        safety_poll_interval=300,
        timeout=120,
    )

# The same with a short safety net, for lost callbacks.
with _dag("veo_e2e_callback_safety_net", retries=2):
    VeoOperator(
        task_id="generate",
        prompt="a kite over a lake, {{ run_id }}",
        model="veo3",
        veo_conn_id="veo_callback",
        wait_mode="callback",
        safety_poll_interval=2,
        timeout=120,
    )


def _bare_dag(dag_id: str) -> DAG:
    """No retries, no retry_delay anywhere: what a user who never heard of the resume race writes."""
    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False)


# Callback mode, three mapped tasks, no retries set: the operator's default retries cover
# Airflow's resume race (apache/airflow#66374).
with _bare_dag("veo_e2e_no_retries"):
    VeoOperator.partial(
        task_id="generate", model="veo3", veo_conn_id="veo_callback", wait_mode="callback", timeout=120
    ).expand(prompt=["a red kite", "a blue kite", "a green kite"])

# execution_timeout is honoured while deferred; the retry resumes the same job.
with _bare_dag("veo_e2e_execution_timeout"):
    VeoOperator(
        task_id="generate",
        prompt="a slow sunrise, {{ run_id }}",
        model="veo3",
        execution_timeout=timedelta(seconds=8),
        timeout=600,
        **FAST,
    )

# The API refuses connections at first (connection veo_late points at a port nobody listens on yet).
with _bare_dag("veo_e2e_api_down"):
    VeoOperator(task_id="generate", prompt="a lighthouse, {{ run_id }}", model="veo3", veo_conn_id="veo_late", **FAST)

# Spending cap (connection veo_capped: daily_job_limit=2): three mapped tasks at once, counted
# by the api-server's /veo/quota; a paid task whose download fails retries without counting.
with _bare_dag("veo_e2e_capped"):
    VeoOperator.partial(
        task_id="generate",
        model="veo3",
        veo_conn_id="veo_capped",
        output_path=OUT + "/capped/{{ run_id | replace(':', '_') }}-{{ ti.map_index }}.mp4",
        retry_delay=timedelta(seconds=1),
        **FAST,
    ).expand(prompt=["a red kite", "a blue kite", "a green kite"])
