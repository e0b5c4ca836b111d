"""Three prompts -> three videos, in parallel, written under an output folder.

Mapped VeoOperator tasks wait in the triggerer (no worker slot held) and each streams its MP4 to
``$VEO_OUTPUT_DIR/<ds>/<map_index>.mp4``. Run offline with ``make demo`` (local Veo emulator),
or against the real API by setting the ``veo_default`` connection's token.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task

from veo_provider.operators.veo import VeoOperator

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))


@dag(
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["veo", "example"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
)
def veo_text_to_video():
    @task
    def prompts() -> list[str]:
        return [
            "White ceramic coffee mug on glossy marble countertop with morning window light. "
            "Camera slowly rotates 360 degrees around the mug.",
            "A paper boat drifting down a rainy city gutter, macro lens, shallow depth of field.",
            "Time-lapse of a sunflower field at golden hour, gentle breeze, drone shot.",
        ]

    videos = VeoOperator.partial(
        task_id="generate",
        model="veo3-fast",
        aspect_ratio="16:9",
        poll_interval=POLL_INTERVAL,
        first_poll_delay=min(POLL_INTERVAL, 10),
        timeout=1800,
        # run_after also exists for manual runs (which have no logical date, hence no {{ ds }}).
        output_path="file://" + OUTPUT_DIR + "/{{ dag_run.run_after | ds }}/{{ ti.map_index }}.mp4",
    ).expand(prompt=prompts())

    @task
    def report(results: list[dict]) -> list[str]:
        # Index within len(): iterating Airflow's lazy XCom sequence asks for one item past the
        # end, which its client logs as "[error] XCom not found" in an otherwise clean log.
        videos = [results[i] for i in range(len(results))]
        for r in videos:
            print(f"Veo task {r['task_id']}: {r['state']} -> {r['output_path']} ({r['prompt'][:40]}...)")
        return [r["output_path"] for r in videos]

    report(videos.output)


veo_text_to_video()
