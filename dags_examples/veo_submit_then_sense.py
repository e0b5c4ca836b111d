"""Submit a video and wait for it in a separate, deferrable sensor.

``submit`` (``wait_for_completion=False``) returns right after the paid POST; its XCom's
``task_id`` is the Veo job. ``wait`` (VeoSensor) waits for that job in the triggerer with its own
``timeout`` / ``soft_fail`` and writes the MP4. Useful when the waiting should be separate, or
when the Veo task id comes from elsewhere (another DAG, an API call): the sensor only needs the id.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag

from veo_provider.operators.veo import VeoOperator
from veo_provider.sensors.veo import VeoSensor

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))


@dag(schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example"])
def veo_submit_then_sense():
    submit = VeoOperator(
        task_id="submit",
        action="text2video",
        model="veo3-fast",
        prompt="A hot-air balloon rising over a misty valley at dawn.",
        wait_for_completion=False,
    )
    wait = VeoSensor(
        task_id="wait",
        veo_task_id="{{ ti.xcom_pull(task_ids='submit')['task_id'] }}",
        poke_interval=POLL_INTERVAL,
        timeout=1800,
        output_path="file://" + OUTPUT_DIR + "/sensed/{{ dag_run.run_after | ts_nodash }}.mp4",
    )
    submit >> wait


veo_submit_then_sense()
