"""Where a Veo task waits by default: in the triggerer, unless the deployment chose otherwise."""

from __future__ import annotations

import pytest

from veo_provider.runtime import default_deferrable, in_process

ENV = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"


@pytest.fixture
def airflow_home(monkeypatch):
    """No [operators] default_deferrable in the environment or the loaded airflow.cfg; restored after."""
    from airflow.providers.common.compat.sdk import conf

    monkeypatch.delenv(ENV, raising=False)
    saved = dict(conf["operators"]) if conf.has_section("operators") else None
    if saved is not None:
        conf.remove_section("operators")
    yield
    if conf.has_section("operators"):
        conf.remove_section("operators")
    if saved is not None:
        conf.add_section("operators")
        for key, value in saved.items():
            conf.set("operators", key, value)


def test_unset_means_deferrable_although_airflows_own_default_is_false(airflow_home):
    from airflow.providers.common.compat.sdk import conf

    assert conf.getboolean("operators", "default_deferrable") is False  # Airflow's default
    assert default_deferrable() is True


@pytest.mark.parametrize(("value", "expected"), [("False", False), ("true", True)])
def test_a_value_the_deployment_set_in_its_environment_decides(airflow_home, monkeypatch, value, expected):
    monkeypatch.setenv(ENV, value)
    assert default_deferrable() is expected


def test_the_false_that_a_generated_airflow_cfg_holds_is_not_taken_for_a_choice(airflow_home, tmp_path):
    """`airflow db migrate` writes every default into airflow.cfg, `default_deferrable = false` included."""
    import subprocess
    import sys

    code = "from veo_provider.runtime import default_deferrable; print(default_deferrable())"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    (tmp_path / "airflow.cfg").write_text("[operators]\ndefault_deferrable = false\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "True"
    env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "False"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_the_operator_sensor_and_decorator_follow_it(airflow_home, monkeypatch):
    from veo_provider.operators.veo import VeoOperator
    from veo_provider.sensors.veo import VeoSensor

    assert VeoOperator(task_id="a", prompt="p").deferrable is True
    monkeypatch.setenv(ENV, "false")
    assert VeoOperator(task_id="b", prompt="p").deferrable is False
    assert VeoSensor(task_id="c", veo_task_id="j").deferrable is False
    assert VeoOperator(task_id="d", prompt="p", deferrable=True).deferrable is True


def test_a_unit_test_process_is_not_an_in_process_task_run():
    assert in_process() is False


def test_task_veo_follows_it_too(airflow_home, monkeypatch):
    from airflow.providers.common.compat.sdk import DAG

    from veo_provider.decorators.veo import veo_task

    monkeypatch.setenv(ENV, "false")
    with DAG("deferrable_default", schedule=None):

        @veo_task(model="veo3")
        def prompt() -> str:
            return "a red kite"

        waits_here = prompt().operator
        in_triggerer = veo_task(python_callable=lambda: "p", task_id="explicit", deferrable=True)().operator
    assert waits_here.deferrable is False
    assert in_triggerer.deferrable is True
