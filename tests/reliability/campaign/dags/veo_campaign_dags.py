"""The fault campaign's DAGs: one run = 2 or 3 mapped VeoOperator tasks, each on the connection conf names.

``conf``: ``run_key`` (in every prompt and output path, so jobs and files map to runs) and ``conns``
(one connection id per map index: a ``veo_p<slot>`` connection polls, a ``veo_c<slot>`` one has
callback settings, so ``wait_mode="auto"`` mixes poll and callback tasks in one run).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from veo_provider.operators.veo import VeoOperator

OUT = os.environ.get("VEO_CAMPAIGN_OUT", "/tmp/veo-campaign")
#: Seconds: the safety-net poll in callback mode, and the wait of one try.
SAFETY_POLL = 15
TIMEOUT = 60


def prompt(run_key: str, index: int) -> str:
    """The prompt of map index ``index`` (the campaign aims faults at ``marker(run_key, index)``)."""
    return f"campaign {marker(run_key, index)} a paper boat on a pond"


def marker(run_key: str, index: int) -> str:
    return f"{run_key} [task {index}]"


for width in (2, 3):
    with DAG(
        f"veo_campaign_w{width}",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=64,
        max_active_tasks=256,
    ):
        # retries and retry_delay: the operator's defaults (2 retries, 30 s apart), as users get them.
        VeoOperator.partial(
            task_id="generate",
            model="veo3",
            wait_mode="auto",
            poll_interval=2,
            first_poll_delay=3,
            safety_poll_interval=SAFETY_POLL,
            timeout=TIMEOUT,
            output_path=OUT + "/{{ dag_run.conf['run_key'] }}/{{ ti.map_index }}.mp4",
        ).expand_kwargs(
            [
                {
                    "prompt": prompt("{{ dag_run.conf['run_key'] }}", i),
                    "veo_conn_id": "{{ dag_run.conf['conns'][" + str(i) + "] }}",
                }
                for i in range(width)
            ]
        )
