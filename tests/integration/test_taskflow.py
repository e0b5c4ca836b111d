"""`@task.veo` in a real `airflow dags test` run, mapped over three prompts, against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_taskflow_dag_makes_one_job_per_prompt(dags_test, emulator):
    result = dags_test("veo_taskflow")
    assert result.succeeded, result.output[-4000:]
    xcoms = result.xcoms("veo_taskflow", "generate")
    assert [x["state"] for x in xcoms] == ["succeeded"] * 3
    assert all(Path(x["output_path"]).read_bytes()[4:8] == b"ftyp" for x in xcoms)
    prompts = sorted(job.request["prompt"] for job in emulator.jobs)
    assert prompts == [
        "A lighthouse at dusk, cinematic, slow camera move",
        "A paper boat in the rain, cinematic, slow camera move",
        "A red kite over the sea, cinematic, slow camera move",
    ]
    assert emulator.jobs_created == 3 and emulator.max_jobs_per_body == 1
    assert [t[1] for t in result.tries("veo_taskflow", "generate")] == ["success"] * 3
