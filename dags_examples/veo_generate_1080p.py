"""Generate a clip, upscale it to 1080p, and store it through an ObjectStoragePath URL.

``generate`` makes a 720p clip (no download); ``upscale_1080p`` sends its ``video_id`` to
``/veo/upsample`` and streams the 1080p MP4 to ``params.output_url`` (a local ``file://`` folder
by default; any ObjectStoragePath URL works, e.g. ``s3://my-bucket/veo``); ``describe`` opens
the stored file with ``ObjectStoragePath`` and writes a JSON sidecar next to it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime

from airflow.sdk import ObjectStoragePath, dag, task

from veo_provider.operators.veo import VeoOperator

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))
# On S3: "s3://my-bucket/veo" (apache-airflow-providers-amazon + an aws_default connection), or
# "s3://aws_prod@my-bucket/veo" to name the connection. Override per run with --conf / the trigger form.
OUTPUT_URL = os.environ.get("VEO_OUTPUT_URL", "file://" + OUTPUT_DIR + "/1080p")
VIDEO_URL = "{{ params.output_url }}/{{ dag_run.run_after | ds }}/{{ dag_run.run_after | ts_nodash }}.mp4"


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["veo", "example"],
    params={"output_url": OUTPUT_URL},
)
def veo_generate_1080p():
    fast = {"poll_interval": POLL_INTERVAL, "first_poll_delay": min(POLL_INTERVAL, 10)}
    generate = VeoOperator(
        task_id="generate",
        model="veo3-fast",
        prompt="A lighthouse on a cliff during a storm, waves crashing, cinematic wide shot.",
        **fast,
    )
    # The other 1080p route: VeoOperator(action="get1080p", video_id=...) on the default endpoint.
    upscale = VeoOperator(
        task_id="upscale_1080p",
        endpoint="upsample",
        action="1080p",
        video_id="{{ ti.xcom_pull(task_ids='generate')['video_id'] }}",
        output_path=VIDEO_URL,
        **fast,
    )
    generate >> upscale

    @task(multiple_outputs=False)  # one XCom; Airflow 3.0 cannot push a key whose value is None
    def describe(result: dict, video_url: str) -> dict:
        video = ObjectStoragePath(video_url)
        info = {"url": str(video), "bytes": video.stat().st_size, **result}
        (video.parent / (video.stem + ".json")).write_text(json.dumps(info, indent=2))
        return info

    describe(upscale.output, video_url=VIDEO_URL)


veo_generate_1080p()
