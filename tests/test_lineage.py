"""Assets and lineage of a written video: asset event metadata, OpenLineage facets, one real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.execution_time.context import OutletEventAccessors

# The integration suite's `airflow dags test` fixtures (its conftest only serves tests/integration/).
from tests.support import BIN
from veo_provider.lineage import (
    VeoLineageMixin,
    asset_extra,
    dataset_naming,
    emit_asset_event,
    openlineage_facets,
    output_asset,
)

SIGNED = "https://cdn.example.com/videos/v1.mp4?X-Amz-Signature=SIG-never-store-me&X-Amz-Credential=CRED"


def xcom(**overrides: object) -> dict[str, object]:
    result: dict[str, object] = {
        "task_id": "veo-job-1",
        "video_id": "vid-1",
        "video_url": SIGNED,
        "state": "succeeded",
        "trace_id": "trace-1",
        "created_at": "2025-06-01T10:00:00Z",
        "complete_at": "2025-06-01T10:01:30Z",
        "model": "veo3",
        "action": "text2video",
        "output_path": "/data/videos/kite.mp4",
        "prompt": "a red kite",
        "resolution": None,
    }
    return {**result, **overrides}


class Task:
    def __init__(self, *outlets: object) -> None:
        self.outlets = list(outlets)


# ------------------------------------------------------------------------------ output_asset


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/data/videos/kite.mp4", "file:///data/videos/kite.mp4"),
        ("file:///data/videos/kite.mp4", "file:///data/videos/kite.mp4"),
        ("file:///data/videos/{{ ds }}/{{ ti.map_index }}.mp4", "file:///data/videos"),
        ("/data/videos/{{ ds }}.mp4", "file:///data/videos"),
        ("s3://media/veo/{{ ds }}/clip.mp4", "s3://media/veo"),
        ("s3://aws_default@media/veo/clip.mp4?versionId=1", "s3://media/veo/clip.mp4"),
    ],
)
def test_output_asset_names_the_file_or_the_folder_before_the_template(path, uri):
    asset = output_asset(path)
    assert isinstance(asset, Asset)
    assert asset.uri == uri and asset.name == uri


def test_output_asset_takes_asset_arguments():
    asset = output_asset("/data/videos/kite.mp4", name="kite_videos", group="videos")
    assert (asset.name, asset.group, asset.uri) == ("kite_videos", "videos", "file:///data/videos/kite.mp4")


@pytest.mark.parametrize("path", ["videos/kite.mp4", "{{ var.value.out }}/kite.mp4", "/{{ ds }}.mp4"])
def test_output_asset_refuses_what_names_no_place(path):
    with pytest.raises(ValueError, match="output_asset needs"):
        output_asset(path)


# ------------------------------------------------------------------------------ asset events


def test_asset_event_extra_is_the_videos_metadata_without_secrets():
    events = OutletEventAccessors()
    kite, other = output_asset("/data/videos/kite.mp4"), Asset("s3://media/manifests")
    extra = emit_asset_event({"outlet_events": events}, Task(kite, other), xcom())

    expected = {
        "veo_task_id": "veo-job-1",
        "video_id": "vid-1",
        "video_url": "https://cdn.example.com/videos/v1.mp4",
        "model": "veo3",
        "action": "text2video",
        "state": "succeeded",
        "output_path": "/data/videos/kite.mp4",
        "trace_id": "trace-1",
        "created_at": "2025-06-01T10:00:00Z",
        "complete_at": "2025-06-01T10:01:30Z",
        "prompt": "a red kite",
        "resolution": None,
    }
    assert extra == expected
    assert events[kite].extra == expected and events[other].extra == expected, "every Asset outlet"
    stored = json.dumps(events[kite].extra)  # what the metadata DB keeps
    assert "SIG-never-store-me" not in stored and "CRED" not in stored and "?" not in stored


def test_asset_event_keeps_what_the_user_set_and_adds_optional_xcom_fields():
    events = OutletEventAccessors()
    kite = output_asset("/data/videos/kite.mp4")
    events[kite].extra["reviewed"] = False
    emit_asset_event({"outlet_events": events}, Task(kite), xcom(resolution="1080p", aspect_ratio="9:16"))
    assert events[kite].extra["reviewed"] is False
    assert events[kite].extra["resolution"] == "1080p" and events[kite].extra["aspect_ratio"] == "9:16"


def test_asset_alias_outlet_gets_an_event_for_the_written_file():
    events = OutletEventAccessors()
    alias = AssetAlias("veo_videos")
    emit_asset_event({"outlet_events": events}, Task(alias), xcom(output_path="s3://conn@media/veo/kite.mp4"))
    [event] = events[alias].asset_alias_events
    assert event.dest_asset_key.uri == "s3://media/veo/kite.mp4"
    assert event.extra["veo_task_id"] == "veo-job-1" and event.extra["output_path"] == "s3://media/veo/kite.mp4"


def test_asset_alias_without_a_written_file_adds_nothing():
    events = OutletEventAccessors()
    alias = AssetAlias("veo_videos")
    emit_asset_event({"outlet_events": events}, Task(alias), xcom(output_path=None))
    assert events[alias].asset_alias_events == []


@pytest.mark.parametrize(
    ("context", "task"),
    [
        ({"outlet_events": OutletEventAccessors()}, Task()),
        ({"outlet_events": OutletEventAccessors()}, object()),
        ({}, Task(Asset("file:///data/videos/kite.mp4"))),
    ],
    ids=["no-outlets", "no-outlets-attribute", "no-outlet-events"],
)
def test_no_op_without_outlets_or_outlet_events(context, task):
    assert emit_asset_event(context, task, xcom()) is None
    if "outlet_events" in context:
        assert len(context["outlet_events"]) == 0


def test_a_broken_outlet_never_fails_the_task(caplog):
    class Broken(dict):
        def __getitem__(self, key):
            raise RuntimeError("metadata store is down")

    assert emit_asset_event({"outlet_events": Broken()}, Task(Asset("file:///x.mp4")), xcom()) is None
    assert "metadata store is down" in caplog.text


def test_asset_extra_is_json_able():
    extra = asset_extra(xcom(created_at=Path("/odd"), video_url=None, output_path=None))
    assert json.loads(json.dumps(extra)) == extra
    assert extra["video_url"] is None and extra["created_at"] == "/odd"


# ------------------------------------------------------------------------------ OpenLineage naming


@pytest.mark.parametrize(
    ("location", "naming"),
    [
        ("/data/videos/kite.mp4", ("file", "/data/videos/kite.mp4")),
        ("file:///data/videos/kite.mp4", ("file", "/data/videos/kite.mp4")),
        ("file://nas01/exports/kite.mp4", ("file://nas01", "/exports/kite.mp4")),
        ("s3://media/veo/2025/kite.mp4", ("s3://media", "veo/2025/kite.mp4")),
        ("s3a://media/kite.mp4", ("s3://media", "kite.mp4")),
        ("s3://aws_default@media/kite.mp4", ("s3://media", "kite.mp4")),
        ("gs://media/veo/kite.mp4", ("gs://media", "veo/kite.mp4")),
        (SIGNED, ("https://cdn.example.com", "/videos/v1.mp4")),
    ],
)
def test_dataset_naming_follows_openlineage_conventions(location, naming):
    assert dataset_naming(location) == naming


def test_dataset_naming_of_a_relative_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert dataset_naming("videos/kite.mp4") == ("file", str(tmp_path / "videos" / "kite.mp4"))


# ------------------------------------------------------------------------------ OpenLineage facets


@pytest.fixture
def ol():
    return pytest.importorskip("airflow.providers.openlineage.extractors")


def _has_execution_parameters_facet() -> bool:
    """openlineage-python 1.38+ (Airflow 3.1's constraints on) has it; 3.0's 1.37 does not."""
    try:
        from openlineage.client.facet_v2 import execution_parameters_run  # noqa: F401
    except ImportError:
        return False
    return True


def parameters(lineage) -> dict[str, str] | None:
    """The ``executionParameters`` run facet's parameters; None (and no facet) on an older client."""
    facet = lineage.run_facets.get("executionParameters")
    if not _has_execution_parameters_facet():
        assert facet is None
        return None
    return {p.key: p.value for p in facet.parameters}


REQUEST = {
    "endpoint": "videos",
    "action": "image2video",
    "model": None,
    "prompt": "the kite flies off",
    "image_urls": ["https://img.example.com/first.png?token=IMG-SECRET", "data:image/png;base64,AAAA"],
    "video_id": None,
    "resolution": "1080p",
    "image_mask": "base64-mask-never-sent",
}


def test_openlineage_output_is_the_written_file_and_the_job_is_a_run_facet(ol):
    lineage = openlineage_facets(xcom(output_path="/data/videos/kite.mp4", prompt=None), REQUEST)
    assert isinstance(lineage, ol.OperatorLineage)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", "/data/videos/kite.mp4")]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("https://img.example.com", "/first.png")]
    query = lineage.run_facets["externalQuery"]
    assert (query.externalQueryId, query.source) == ("veo-job-1", "veo")
    assert parameters(lineage) in (
        None,
        {
            "endpoint": "videos",
            "action": "text2video",  # what the result says was run
            "model": "veo3",
            "resolution": "1080p",
            "prompt": "the kite flies off",
            "trace_id": "trace-1",
        },
    )  # None only where the client has no such facet (checked in parameters())


def test_openlineage_facets_carry_no_secret(ol):
    from openlineage.client.serde import Serde

    lineage = openlineage_facets(xcom(), REQUEST)
    assert lineage is not None
    text = json.dumps([Serde.to_dict(x) for x in [*lineage.inputs, *lineage.outputs, *lineage.run_facets.values()]])
    for secret in ("IMG-SECRET", "SIG-never-store-me", "base64-mask-never-sent", "AAAA"):
        assert secret not in text


def test_openlineage_output_on_s3(ol):
    lineage = openlineage_facets(xcom(output_path="s3://media/veo/2025-06-01/0.mp4"), {"endpoint": "videos"})
    assert lineage is not None
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://media", "veo/2025-06-01/0.mp4")]


def test_openlineage_output_without_output_path_is_the_video_url(ol):
    lineage = openlineage_facets(xcom(output_path=None), None)
    assert lineage is not None
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("https://cdn.example.com", "/videos/v1.mp4")]
    assert lineage.inputs == []


def test_openlineage_without_a_result_has_no_output_and_no_job(ol):
    lineage = openlineage_facets(None, {"endpoint": "videos", "model": "veo3"})
    assert lineage is not None
    assert lineage.outputs == [] and "externalQuery" not in lineage.run_facets
    assert parameters(lineage) in (None, {"endpoint": "videos", "model": "veo3"})


def test_openlineage_facets_are_none_without_the_provider(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # import fails
    assert openlineage_facets(xcom(), REQUEST) is None


# ------------------------------------------------------------------------------ the operator mixin


class LineageOperator(VeoLineageMixin, BaseOperator):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.endpoint, self.model, self.image_urls = "videos", None, ["https://img.example.com/a.png?sig=S"]

    def execute(self, context):
        result = xcom()
        self.record_lineage(context, result)
        return result


def test_mixin_records_the_asset_event_and_answers_openlineage(ol):
    kite = output_asset("/data/videos/kite.mp4")
    op = LineageOperator(task_id="generate", outlets=[kite])
    events = OutletEventAccessors()
    op.execute({"outlet_events": events})
    assert events[kite].extra["veo_task_id"] == "veo-job-1"

    lineage = op.get_openlineage_facets_on_complete(task_instance=None)
    assert lineage is not None and isinstance(lineage, ol.OperatorLineage)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", "/data/videos/kite.mp4")]
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("https://img.example.com", "/a.png")]
    assert lineage.run_facets["externalQuery"].externalQueryId == "veo-job-1"


def test_mixin_before_the_video_is_written_has_inputs_only(ol):
    lineage = LineageOperator(task_id="generate").get_openlineage_facets_on_complete(task_instance=None)
    assert lineage is not None and lineage.outputs == [] and len(lineage.inputs) == 1


# ------------------------------------------------------------------------------ a real run


@pytest.mark.integration
def test_dags_test_records_the_asset_event_with_the_videos_metadata(request, monkeypatch):
    """Needs VeoOperator to derive from VeoLineageMixin and call ``self.record_lineage(context, result)``."""
    run, env = request.getfixturevalue("dags_test"), request.getfixturevalue("airflow_env")
    events_file = Path(env["AIRFLOW_HOME"]) / "openlineage.jsonl"
    ol_installed = _has_openlineage()
    if ol_installed:  # the file transport writes each OpenLineage event as a JSON line
        monkeypatch.setitem(env, "OPENLINEAGE__TRANSPORT__TYPE", "file")
        monkeypatch.setitem(env, "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(events_file))
        monkeypatch.setitem(env, "OPENLINEAGE__TRANSPORT__APPEND", "true")

    for command in (["dags", "reserialize"], ["dags", "unpause", "veo_it_lineage_consumer"]):  # the consumer's DAG
        proc = subprocess.run([BIN / "airflow", *command], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    result = run("veo_it_lineage")
    assert result.succeeded, result.output[-4000:]
    [x] = result.xcoms("veo_it_lineage", "generate")
    video = x["output_path"]
    rows = result.query(
        "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE e.source_dag_id = 'veo_it_lineage' AND e.source_run_id = "
        "(SELECT run_id FROM dag_run WHERE dag_id = 'veo_it_lineage' ORDER BY id DESC LIMIT 1)"
    )
    # One event through the Asset outlet, one through the alias (which VeoOperator must add).
    assert len(rows) == 2, f"VeoOperator._finish must call record_lineage (VeoLineageMixin): {rows}"
    assert {uri for uri, _ in rows} == {"file://" + video}, "both name the written file"
    for _, stored in rows:
        extra = json.loads(stored)
        assert extra, "no metadata: VeoOperator._finish must call record_lineage"
        assert extra["veo_task_id"] == x["task_id"] and extra["video_id"] == x["video_id"]
        assert extra["output_path"] == video and extra["state"] == "succeeded" and extra["model"] == "veo3"
        assert extra["video_url"] == x["video_url"].split("?")[0]
        assert "test-token" not in stored
    queued = result.query("SELECT target_dag_id FROM asset_dag_run_queue")
    assert ("veo_it_lineage_consumer",) in queued, "the downstream DAG is queued to run on the new video"

    if ol_installed:
        complete = [e for e in map(json.loads, events_file.read_text().splitlines()) if e["eventType"] == "COMPLETE"]
        job = [e for e in complete if e["job"]["name"] == "veo_it_lineage.generate"]
        assert job, [e["job"]["name"] for e in complete]
        assert [(d["namespace"], d["name"]) for d in job[-1]["outputs"]] == [("file", video)]
        assert job[-1]["run"]["facets"]["externalQuery"]["externalQueryId"] == x["task_id"]


def _has_openlineage() -> bool:
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
    except ImportError:
        return False
    return True
