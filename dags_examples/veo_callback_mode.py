"""Wait for a video by webhook callback instead of polling.

With ``wait_mode="callback"`` the API POSTs the finished job to the provider's callback receiver
on the api-server, which wakes the deferred task at once: no polling while the video renders.
The ``veo_default`` connection needs the extras ``callback_base_url`` (e.g.
``https://airflow.example.com/veo``) and ``callback_secret`` (32+ characters); see
docs/callbacks.md. Without them the task fails before paying anything.

A slow safety-net poll (``safety_poll_interval``, default 300 s) still finishes the task if a
callback is lost. ``airflow dags test`` runs no api-server, so there the safety net is what
finishes the task: set ``VEO_SAFETY_POLL_INTERVAL`` small (the test suite uses 0.5 s).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag

from veo_provider.operators.veo import VeoOperator

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
SAFETY_POLL_INTERVAL = float(os.environ.get("VEO_SAFETY_POLL_INTERVAL", "300"))


@dag(schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example"])
def veo_callback_mode():
    VeoOperator(
        task_id="generate",
        model="veo3-fast",
        prompt="A snow globe being shaken, flakes swirling around a tiny wooden cabin, macro.",
        wait_mode="callback",
        safety_poll_interval=SAFETY_POLL_INTERVAL,
        output_path="file://" + OUTPUT_DIR + "/callback/{{ dag_run.run_after | ts_nodash }}.mp4",
    )


veo_callback_mode()
