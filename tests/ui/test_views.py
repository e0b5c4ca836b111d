"""The tabs the plugin adds, and the records the views read kept in step with the writers."""

from __future__ import annotations

import pytest

from veo_provider.ui import UI_PREFIX
from veo_provider.ui.views import BUNDLE_FILE, react_apps


def test_a_videos_tab_on_the_run_and_task_instance_pages_and_a_page_in_the_nav() -> None:
    apps = react_apps()
    assert [(a["name"], a["destination"]) for a in apps] == [
        ("Videos", "dag_run"),
        ("Videos", "task_instance"),
        ("Veo videos", "nav"),
    ]
    assert {a["bundle_url"] for a in apps} == {f"{UI_PREFIX}/static/{BUNDLE_FILE}"}
    assert len({a["url_route"] for a in apps}) == 3


def test_the_bundle_url_follows_a_non_root_base_url() -> None:
    assert react_apps("https://airflow.example/team-a/")[0]["bundle_url"] == f"/team-a{UI_PREFIX}/static/{BUNDLE_FILE}"
    assert react_apps("/team-b")[0]["bundle_url"] == f"/team-b{UI_PREFIX}/static/{BUNDLE_FILE}"


def test_the_views_read_the_xcom_keys_the_operator_writes() -> None:
    from veo_provider.models.records import XCOM_KEYS
    from veo_provider.ui import videos

    assert {"task_id", "video_url", "output_path", "prompt", "model", "action"} <= set(XCOM_KEYS)
    result = dict.fromkeys(XCOM_KEYS) | {"output_path": "/data/a.mp4"}
    assert videos.recorded_output_path(result, {"output_path": "/data/a.mp4"}) == "/data/a.mp4"
    assert videos.recorded_output_path({"output_path": "/etc/passwd"}, {"output_path": "/etc/passwd"}) is None, (
        "only a Veo result names a file"
    )


@pytest.mark.parametrize(
    ("recorded", "rendered"),
    [
        ("/data/a.mp4", "file:///data/a.mp4"),  # the hook reports a file:// URL as a plain path
        ("/data/a.mp4", "/data//a.mp4"),
        ("s3://aws@bucket/a.mp4", "s3://aws@bucket/a.mp4"),
    ],
)
def test_the_result_path_counts_when_it_is_where_the_rendered_output_path_wrote(recorded: str, rendered: str) -> None:
    from veo_provider.models.records import XCOM_KEYS
    from veo_provider.ui.videos import recorded_output_path

    assert recorded_output_path(dict.fromkeys(XCOM_KEYS) | {"output_path": recorded}, {"output_path": rendered})


@pytest.mark.parametrize(
    "rendered",
    [{}, {"output_path": None}, {"output_path": "/data/b.mp4"}, {"output_path": "s3://bucket/a.mp4"}],
)
def test_a_result_path_the_worker_did_not_render_is_never_trusted(rendered: dict[str, object]) -> None:
    from veo_provider.models.records import XCOM_KEYS
    from veo_provider.ui.videos import recorded_output_path

    assert recorded_output_path(dict.fromkeys(XCOM_KEYS) | {"output_path": "/data/a.mp4"}, rendered) is None


def test_the_entries_are_what_airflow_serves_to_its_ui() -> None:
    plugins = pytest.importorskip("airflow.api_fastapi.core_api.datamodels.plugins")
    if not hasattr(plugins, "ReactAppResponse"):
        pytest.skip("Airflow 3.0 serves no react_apps (they arrived in 3.1)")
    ReactAppResponse = plugins.ReactAppResponse

    from veo_provider.ui.videos import VEO_OPERATORS

    for entry in react_apps():
        assert ReactAppResponse.model_validate(entry).model_dump()["bundle_url"] == entry["bundle_url"]
    scoped = react_apps()[1]["applies_to"]["operator_name"]
    assert set(scoped) <= VEO_OPERATORS, "the tab's scope and the list's filter name the same operators"
