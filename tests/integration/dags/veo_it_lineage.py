"""Assets and lineage: the written video is an Asset; a downstream DAG is scheduled on it."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, AssetAlias
from airflow.providers.standard.operators.empty import EmptyOperator

from veo_provider.lineage import output_asset
from veo_provider.operators.veo import VeoOperator

OUT = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-it")
VIDEO = OUT + "/lineage/kite.mp4"
VIDEOS = output_asset(VIDEO)

with DAG("veo_it_lineage", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    VeoOperator(
        task_id="generate",
        prompt="a red kite over the dunes",
        model="veo3",
        output_path=VIDEO,
        # The file as an Asset (its event carries the video's metadata), and an alias that names it per event.
        outlets=[VIDEOS, AssetAlias("veo_it_lineage_videos")],
        poll_interval=0.5,
        first_poll_delay=0.2,
    )

# Runs on each new video (the scheduler creates its run; `airflow dags test` only queues it).
with DAG("veo_it_lineage_consumer", schedule=[VIDEOS], start_date=datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="publish")
