"""Every day: prompts from a CSV -> one video per prompt -> a manifest of what was made.

``read_prompts`` reads ``data/daily_prompts.csv`` (next to this file), one mapped VeoOperator per
prompt writes ``$VEO_OUTPUT_DIR/daily/<day>/<map_index>.mp4``, and the grid labels each mapped
task with the prompt's start (``map_index_template``) instead of 0, 1, 2.

``manifest`` runs even when some videos failed (``trigger_rule="all_done"``): it writes
``manifest.json`` listing the videos made and the prompts that failed, then fails the run if any
did, so a partial day is both delivered and noticed.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from datetime import datetime
from pathlib import Path

# AirflowFailException is in airflow.sdk.exceptions from Airflow 3.2: common-compat finds it on every 3.x.
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import dag, task

from veo_provider.operators.veo import VeoOperator

PROMPTS_CSV = Path(__file__).parent / "data" / "daily_prompts.csv"
OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))
log = logging.getLogger(__name__)
# run_after also exists in manual runs, which have no logical date (so no {{ ds }}).
DAY_DIR = OUTPUT_DIR + "/daily/{{ dag_run.run_after | ds }}"


@dag(schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example"])
def veo_daily_prompts():
    @task
    def read_prompts() -> list[str]:
        with PROMPTS_CSV.open(newline="", encoding="utf-8") as f:
            return [row["prompt"].strip() for row in csv.DictReader(f) if row["prompt"].strip()]

    prompts = read_prompts()

    videos = VeoOperator.partial(
        task_id="generate",
        model="veo3-fast",
        map_index_template="{{ task.prompt[:40] }}",
        output_path="file://" + DAY_DIR + "/{{ ti.map_index }}.mp4",
        poll_interval=POLL_INTERVAL,
        first_poll_delay=min(POLL_INTERVAL, 10),
    ).expand(prompt=prompts)

    @task(trigger_rule="all_done")
    def manifest(prompts: list[str], day_dir: str, ti=None) -> None:
        # A failed mapped task has no XCom: its slot comes back as None.
        results = ti.xcom_pull(task_ids="generate", map_indexes=range(len(prompts)))
        made, failed = [], []
        for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
            if result:
                made.append({"prompt": prompt, **result})
            else:
                failed.append({"map_index": i, "prompt": prompt})
        path = Path(day_dir) / "manifest.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"videos": made, "failed": failed}, indent=2))
        # A log line, not print(): a print just before the task fails can be missing from the log.
        log.info("Manifest %s: %d video(s) made, %d failed", path, len(made), len(failed))
        if failed:
            raise AirflowFailException(
                f"{len(failed)} of {len(prompts)} videos failed, {len(made)} made (listed in {path})"
            )

    videos >> manifest(prompts, day_dir=DAY_DIR)


veo_daily_prompts()
