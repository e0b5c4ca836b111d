"""TaskFlow: ``@task.veo`` turns a function that returns a prompt into a paid-once Veo task.

The function runs in the worker, so it can build the prompt from upstream results; the
decorator's arguments are VeoOperator's. Mapped over three topics: three jobs, three MP4s.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))


@dag(schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example"])
def veo_taskflow():
    @task
    def topics() -> list[str]:
        return ["a red kite over the sea", "a paper boat in the rain", "a lighthouse at dusk"]

    @task.veo(
        model="veo3-fast",
        poll_interval=POLL_INTERVAL,
        first_poll_delay=min(POLL_INTERVAL, 10),
        output_path="file://" + OUTPUT_DIR + "/taskflow/{{ dag_run.run_after | ds }}/{{ ti.map_index }}.mp4",
    )
    def generate(topic: str) -> str:
        return f"{topic.capitalize()}, cinematic, slow camera move"

    @task
    def report(results: list[dict]) -> list[str]:
        # Index within len(): iterating the lazy XCom sequence logs "[error] XCom not found" at its end.
        return [results[i]["output_path"] for i in range(len(results))]

    report(generate.expand(topic=topics()))


veo_taskflow()
