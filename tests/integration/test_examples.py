"""`airflow dags test` of the example DAGs in dags_examples/ against the emulator, checking what they produce."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from veo_provider.compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS
from veo_provider.testing.emulator import CallbackRecorder

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
LAST_RUN = "SELECT {} FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1"


@pytest.fixture(scope="module", autouse=True)
def _example_data(airflow_env):
    """The examples find their CSVs next to the DAG file: copy data/ into the test DAGs folder too."""
    shutil.copytree(EXAMPLES / "data", Path(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"]) / "data", dirs_exist_ok=True)


def is_mp4(path: str | Path) -> bool:
    return Path(path).read_bytes()[4:8] == b"ftyp"


def labels(result, dag_id: str, task_id: str) -> list[tuple[int, str]]:
    """The grid labels of a mapped task (map_index_template), by map index."""
    return result.query(
        "SELECT map_index, rendered_map_index FROM task_instance WHERE dag_id=? AND task_id=? "
        f"AND run_id = ({LAST_RUN.format('run_id')}) ORDER BY map_index",
        dag_id,
        task_id,
        dag_id,
    )


def test_every_example_dag_file_imports_on_this_airflow_and_the_review_needs_3_1(airflow_env):
    import subprocess

    from tests.support import airflow_cli

    def cli(*args: str) -> list[dict]:
        proc = subprocess.run(airflow_cli(*args, "-o", "json"), env=airflow_env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        [line] = [x for x in proc.stdout.splitlines() if x.startswith("[")]  # after Airflow's own log lines
        return json.loads(line)

    parse = subprocess.run(airflow_cli("dags", "reserialize"), env=airflow_env, capture_output=True, text=True)
    assert parse.returncode == 0, parse.stderr[-3000:]  # parsed as the dag-processor does, into the database
    assert cli("dags", "list-import-errors") == []
    listed = {d["dag_id"] for d in cli("dags", "list")}
    examples = {f"veo_{p.stem[4:]}" for p in EXAMPLES.glob("veo_*.py")}
    assert listed >= examples - {"veo_review"}
    assert ("veo_review" in listed) == AIRFLOW_V_3_1_PLUS, "the review step needs human-in-the-loop (3.1+)"


def test_daily_prompts_manifest_lists_the_videos_made_when_one_fails(dags_test, emulator, airflow_env):
    with (EXAMPLES / "data" / "daily_prompts.csv").open(encoding="utf-8") as f:
        prompts = [row["prompt"] for row in csv.DictReader(f)]
    emulator.set_faults(fail_jobs={"times": 1})  # the first job submitted fails at the API

    result = dags_test("veo_daily_prompts")

    assert emulator.jobs_created == len(prompts) == 3 and emulator.max_jobs_per_body == 1
    [failed] = [job.request["prompt"] for job in emulator.jobs if job.failure]
    states = result.tries("veo_daily_prompts", "generate")
    assert [state for _, state, _ in states] == ["failed" if p == failed else "success" for p in prompts]
    assert labels(result, "veo_daily_prompts", "generate") == [(i, p[:40]) for i, p in enumerate(prompts)]

    [(run_after,)] = result.query(LAST_RUN.format("run_after"), "veo_daily_prompts")
    manifest = json.loads(
        (Path(airflow_env["VEO_OUTPUT_DIR"]) / "daily" / run_after[:10] / "manifest.json").read_text()
    )
    assert [v["prompt"] for v in manifest["videos"]] == [p for p in prompts if p != failed]
    assert all(v["state"] == "succeeded" and is_mp4(v["output_path"]) for v in manifest["videos"])
    assert manifest["failed"] == [{"map_index": prompts.index(failed), "prompt": failed}]
    # The manifest is written, then the run fails so that the missing video is noticed.
    assert result.tries("veo_daily_prompts", "manifest") == [(-1, "failed", 1)]
    [(manifest_start, last_video_end)] = result.query(
        "SELECT MIN(start_date) FILTER (WHERE task_id='manifest'), MAX(end_date) FILTER (WHERE task_id='generate') "
        f"FROM task_instance WHERE dag_id=? AND run_id = ({LAST_RUN.format('run_id')})",
        "veo_daily_prompts",
        "veo_daily_prompts",
    )
    assert manifest_start > last_video_end, "the manifest waits for every video"
    assert result.query(LAST_RUN.format("state"), "veo_daily_prompts") == [("failed",)]
    assert "1 of 3 videos failed" in result.output


def test_first_last_frames_makes_one_image2video_job_per_pair(dags_test, emulator):
    result = dags_test("veo_first_last_frames")

    assert result.succeeded, result.output[-4000:]
    videos = result.xcoms("veo_first_last_frames", "animate")
    assert len(videos) == 2 and all(is_mp4(v["output_path"]) for v in videos)
    assert emulator.jobs_created == 2 and emulator.max_jobs_per_body == 1
    bodies = sorted((job.request for job in emulator.jobs), key=lambda b: b["image_urls"][0])
    assert [(b["action"], b["model"]) for b in bodies] == [("image2video", "veo31-fast")] * 2
    assert [[u.rsplit("/", 1)[1] for u in b["image_urls"]] for b in bodies] == [
        ["harbour-day.jpg", "harbour-night.jpg"],
        ["rose-bud.jpg", "rose-open.jpg"],
    ]
    assert [label for _, label in labels(result, "veo_first_last_frames", "animate")] == [
        "The bud slowly opens into a full red ros",
        "Night falls over the harbour; the city l",
    ]


def test_generate_then_1080p_is_written_through_object_storage(dags_test, emulator, tmp_path):
    store = tmp_path / "store"
    result = dags_test("veo_generate_1080p", conf={"output_url": store.as_uri()})

    assert result.succeeded, result.output[-4000:]
    [draft] = result.xcoms("veo_generate_1080p", "generate")
    [hd] = result.xcoms("veo_generate_1080p", "upscale_1080p")
    [info] = result.xcoms("veo_generate_1080p", "describe")
    [video] = store.rglob("*.mp4")
    assert is_mp4(video) and hd["output_path"] == str(video) and info["url"] == video.as_uri()
    assert json.loads(video.with_suffix(".json").read_text())["bytes"] == video.stat().st_size
    jobs = sorted(emulator.jobs, key=lambda job: job.created_at)
    assert [job.path for job in jobs] == ["/veo/videos", "/veo/upsample"]
    assert jobs[1].request["video_id"] == draft["video_id"] and jobs[1].request["action"] == "1080p"
    assert draft["output_path"] is None, "the 720p draft is not downloaded"


def test_callback_mode_is_finished_by_the_safety_poll_without_an_api_server(
    dags_test, emulator, airflow_env, monkeypatch
):
    monkeypatch.setitem(airflow_env, "VEO_SAFETY_POLL_INTERVAL", "0.5")
    with CallbackRecorder() as receiver:  # stands in for the api-server's receiver (nobody resumes the task)
        result = dags_test("veo_callback_mode", callback_base_url=receiver.url + "/veo", callback_secret="s" * 40)
        assert result.succeeded, result.output[-4000:]
        assert len(receiver.wait_for(1)) == 1, "the API called back"
        [job] = emulator.jobs
        assert job.mode == "callback" and job.callback_url.startswith(receiver.url + "/veo/callback")
    assert "waiting by callback" in result.output
    [video] = result.xcoms("veo_callback_mode", "generate")
    assert video["state"] == "succeeded" and is_mp4(video["output_path"])


def test_submit_then_sense_writes_the_video_of_the_one_job(dags_test, emulator):
    result = dags_test("veo_submit_then_sense")

    assert result.succeeded, result.output[-4000:]
    [submitted] = result.xcoms("veo_submit_then_sense", "submit")
    [sensed] = result.xcoms("veo_submit_then_sense", "wait")
    assert submitted["state"] == "pending" and sensed["task_id"] == submitted["task_id"]
    assert sensed["state"] == "succeeded" and is_mp4(sensed["output_path"])
    assert emulator.jobs_created == 1


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="human-in-the-loop operators exist from Airflow 3.1")
@pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS,
    reason="`airflow dags test` of Airflow 3.1 and 3.2 cannot run a human-in-the-loop task: its in-line "
    "trigger gets no answer from the in-process supervisor (AttributeError: 'NoneType' object has no "
    "attribute 'response_received'); a real triggerer can",
)
@pytest.mark.parametrize(
    ("option", "made", "skipped"), [("Publish", "publish", "regenerate"), ("Regenerate", "regenerate", "publish")]
)
def test_review_waits_for_a_person_who_watched_the_clip_then_publishes_or_regenerates(
    airflow_env, emulator, option, made, skipped
):
    import os
    import subprocess
    import sys

    from tests.support import ROOT, DagRunResult, airflow_cli

    conn = {"conn_type": "veo", "host": emulator.url, "password": "test-token"}
    env = {**airflow_env, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn)}
    run = subprocess.Popen(
        airflow_cli("dags", "test", "veo_review"), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        reviewer = subprocess.run(
            [sys.executable, "-m", "tests.integration.hitl", "veo_review", "review", option],
            env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
            cwd=ROOT, capture_output=True, text=True, timeout=200,
        )  # fmt: skip
        output, _ = run.communicate(timeout=200)
    finally:
        run.kill()
    assert reviewer.returncode == 0, reviewer.stderr[-3000:]
    result = DagRunResult(run.returncode, output, Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db")
    assert result.succeeded, output[-4000:]
    run_id = reviewer.stdout.strip().splitlines()[-1]
    [(body,)] = result.query(
        "SELECT h.body FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id WHERE t.dag_id=? AND t.run_id=?",
        "veo_review",
        run_id,
    )
    player = f"dags/veo_review/runs/{quote(run_id)}/tasks/generate/plugin/veo-video"
    assert f"{player})" in body, body
    assert result.tries("veo_review", made)[0][1] == "success"
    assert result.tries("veo_review", skipped)[0][1] == "skipped"
    [clip] = result.xcoms("veo_review", "generate")
    assert is_mp4(clip["output_path"])
    if made == "publish":
        [published] = result.xcoms("veo_review", "publish")
        assert Path(published).read_bytes() == Path(clip["output_path"]).read_bytes()
        assert emulator.jobs_created == 1
    else:
        [again] = result.xcoms("veo_review", "regenerate")
        assert is_mp4(again["output_path"]) and again["output_path"] != clip["output_path"]
        assert emulator.jobs_created == 2, "a regeneration is a new, paid job"
