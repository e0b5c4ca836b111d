"""Generate a clip, have a person watch it in Airflow and decide, then publish it or make another take.

``review`` is Airflow's human-in-the-loop step (the standard provider's ``HITLBranchOperator``,
Airflow 3.1+): it waits in *Required actions* with a link to the clip's player (the task
instance's Videos tab, streamed by the api-server) and branches to ``publish`` (the file is
copied to ``published/``) or ``regenerate`` (a second take, with its own Videos tab). Without an
answer within ``response_timeout`` the default, ``Regenerate``, is taken.

Airflow 3.0 has no human-in-the-loop operators: there this file defines no DAG (and breaks nothing).
"""

from __future__ import annotations

import inspect
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException
from airflow.sdk import dag, task

from veo_provider.operators.veo import VeoOperator

try:
    from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
except AirflowOptionalProviderFeatureException:  # Airflow 3.0
    HITLBranchOperator = HITLOperator = None

# How long a person has to answer: `response_timeout` from the standard provider 1.13 (Airflow 3.2's
# constraints); the one Airflow 3.1 ships with calls it `execution_timeout`.
ANSWER_WITHIN = timedelta(hours=24)
if HITLOperator is not None and "response_timeout" in inspect.signature(HITLOperator.__init__).parameters:
    WAIT_FOR_ANSWER = {"response_timeout": ANSWER_WITHIN}
else:
    WAIT_FOR_ANSWER = {"execution_timeout": ANSWER_WITHIN}

OUTPUT_DIR = os.environ.get("VEO_OUTPUT_DIR", "/tmp/veo-videos")
POLL_INTERVAL = float(os.environ.get("VEO_POLL_INTERVAL", "15"))
PROMPT = "A paper boat drifting down a rain-soaked street at dusk, reflections of neon signs, close-up."
CLIP = OUTPUT_DIR + "/review/{{ dag_run.run_after | ts_nodash }}-{{ ti.task_id }}.mp4"
# The clip's player: the generate task instance's Videos tab (run ids hold ':' and '+'). Relative
# to Airflow's UI (its <base href>) unless the api-server's base URL is set, for links sent elsewhere.
BASE_URL = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
PLAYER = (BASE_URL + "/" if BASE_URL else "") + (
    "dags/{{ dag.dag_id }}/runs/{{ run_id | urlencode }}/tasks/generate/plugin/veo-video"
)


@dag(schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["veo", "example", "review"])
def veo_review():
    fast = {"poll_interval": POLL_INTERVAL, "first_poll_delay": min(POLL_INTERVAL, 10)}
    generate = VeoOperator(task_id="generate", model="veo3-fast", prompt=PROMPT, output_path=CLIP, **fast)

    review = HITLBranchOperator(
        task_id="review",
        subject="Publish this Veo clip?",
        body=(
            f"[Watch the clip]({PLAYER}) ({{{{ ti.xcom_pull(task_ids='generate')['model'] }}}}, Veo job "
            "`{{ ti.xcom_pull(task_ids='generate')['task_id'] }}`).\n\n"
            "Prompt: {{ ti.xcom_pull(task_ids='generate')['prompt'] }}\n\n"
            "**Publish** copies it to `published/`; **Regenerate** pays for another take."
        ),
        options=["Publish", "Regenerate"],
        options_mapping={"Publish": "publish", "Regenerate": "regenerate"},
        defaults="Regenerate",
        **WAIT_FOR_ANSWER,
    )

    @task
    def publish(result: dict) -> str:
        target = Path(OUTPUT_DIR) / "published" / Path(result["output_path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["output_path"], target)
        return str(target)

    regenerate = VeoOperator(
        task_id="regenerate", model="veo3-fast", prompt=PROMPT + " Another take.", output_path=CLIP, **fast
    )
    generate >> review >> [publish(generate.output), regenerate]


if HITLBranchOperator is not None:
    veo_review()
