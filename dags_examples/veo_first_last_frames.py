"""Image-to-video: animate from a first frame to a last frame, one video per pair.

Each pair is one mapped VeoOperator (``action="image2video"``, ``image_urls=[first, last]``;
one URL only gives a start frame). ``expand_kwargs`` maps the prompt and the frames together.
The images must be public http(s) URLs the API can fetch; the offline emulator accepts any.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task

from veo_provider.operators.veo import VeoOperator

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))
FRAMES = "https://images.example.com/storyboard"


@dag(schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example"])
def veo_first_last_frames():
    @task
    def frame_pairs() -> list[dict]:
        return [
            {
                "prompt": "The bud slowly opens into a full red rose, soft studio light.",
                "image_urls": [f"{FRAMES}/rose-bud.jpg", f"{FRAMES}/rose-open.jpg"],
            },
            {
                "prompt": "Night falls over the harbour; the city lights switch on one by one.",
                "image_urls": [f"{FRAMES}/harbour-day.jpg", f"{FRAMES}/harbour-night.jpg"],
            },
        ]

    VeoOperator.partial(
        task_id="animate",
        action="image2video",
        model="veo31-fast",
        map_index_template="{{ task.prompt[:40] }}",
        output_path="file://" + OUTPUT_DIR + "/frames/{{ dag_run.run_after | ds }}/{{ ti.map_index }}.mp4",
        poll_interval=POLL_INTERVAL,
        first_poll_delay=min(POLL_INTERVAL, 10),
    ).expand_kwargs(frame_pairs())


veo_first_last_frames()
