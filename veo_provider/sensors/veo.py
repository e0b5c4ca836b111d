"""VeoSensor: wait for a Veo job submitted elsewhere (e.g. by VeoOperator with wait_for_completion=False)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from veo_provider.deadlines import poll_outcome
from veo_provider.links import VeoVideoLink
from veo_provider.resume_hold import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, first_check_at
from veo_provider.runtime import default_deferrable, event_of_an_earlier_try, try_number

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from veo_provider.hooks.veo import VeoHook
    from veo_provider.models import TaskStatus

__all__ = ["VeoSensor"]


class VeoSensor(BaseSensorOperator):
    """Wait until a Veo job finishes; return its result as XCom (the VeoOperator's dict).

    Deferrable by default (the wait runs in the triggerer through the same VeoTrigger as the
    operator; the deployment's ``[operators] default_deferrable`` decides when it sets one);
    ``deferrable=False`` pokes in ``poke`` or ``reschedule`` mode. ``timeout``,
    ``soft_fail`` and ``poke_interval`` behave as in every Airflow sensor.

    :param veo_task_id: The Veo job's id (templated, e.g. ``"{{ ti.xcom_pull('submit')['task_id'] }}"``:
        the XCom dict keeps its documented key ``task_id`` for the job).
    :param veo_conn_id: The Veo connection (default ``veo_default``).
    :param deferrable: Wait in the triggerer (default ``True``, or ``[operators] default_deferrable``
        when the deployment sets it).
    :param first_poll_delay: Seconds before the first check when deferred (default 0: check once
        at once, in the worker, and defer only if the job is not finished; the trigger then checks
        first after at least 15 s, see "Airflow's resume race" in the reliability docs).
    :param output_path: Optional local path or ObjectStoragePath URL to stream the video to (templated).
    :param retries: Default 2 unless ``default_args`` set it (covers Airflow's resume race,
        apache/airflow#66374; a retry only waits again, it pays nothing).
    :param retry_delay: Default 30 seconds.
    """

    template_fields: Sequence[str] = ("veo_task_id", "veo_conn_id", "output_path")
    operator_extra_links = (VeoVideoLink(),)

    def __init__(
        self,
        *,
        veo_task_id: str,
        veo_conn_id: str = "veo_default",
        deferrable: bool | None = None,
        first_poll_delay: float = 0.0,
        output_path: str | None = None,
        retries: int | None = DEFAULT_RETRIES,
        retry_delay: timedelta | float = DEFAULT_RETRY_DELAY,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 15.0)
        super().__init__(retries=retries, retry_delay=retry_delay, **kwargs)
        self.veo_task_id = veo_task_id
        self.veo_conn_id = veo_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.first_poll_delay = first_poll_delay
        self.output_path = output_path

    @cached_property
    def hook(self) -> VeoHook:
        from veo_provider.hooks.veo import VeoHook

        return VeoHook(self.veo_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from veo_provider.triggers.veo import VeoTrigger

        if not self.first_poll_delay:  # a finished job needs no deferral (nor a resume to race)
            from veo_provider.exceptions import VeoError

            try:
                done = self.poke(context)
            except VeoError as exc:
                if not exc.retryable:
                    raise
                self.log.warning("Veo job %s: transient error, the trigger checks again: %s", self.veo_task_id, exc)
                done = False
            if isinstance(done, PokeReturnValue) and done.is_done:
                return done.xcom_value
        now = time.time()
        self.defer(
            trigger=VeoTrigger(
                conn_id=self.veo_conn_id,
                veo_task_id=self.veo_task_id,
                deadline=now + self.timeout,
                poll_interval=self.poke_interval,
                first_check_at=first_check_at(now, self.first_poll_delay, deferring=True),
                try_number=try_number(context),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60),
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from veo_provider.models import decide_state  # pydantic: at run time, not when the DAG is parsed

        status = decide_state(self.hook.get_task(self.veo_task_id))
        self.log.info("Veo job %s is %s", self.veo_task_id, status.state.value)
        if status.finished(self.veo_task_id):
            return PokeReturnValue(is_done=True, xcom_value=self._result(status))
        return False

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from veo_provider.models import VeoEvent

        ev = VeoEvent.read(event)
        if event_of_an_earlier_try(context, ev.deferred_in_try):  # Airflow 3.0: see runtime.py
            return self.execute(context)
        status = poll_outcome(ev)
        if status is None:
            raise AirflowSensorTimeout(
                f"Veo job {self.veo_task_id} did not finish within timeout={self.timeout}s "
                f"(last seen: {ev.last_state or 'unknown'})"
            )
        return self._result(status)

    def _result(self, status: TaskStatus) -> dict[str, Any]:
        from veo_provider.models import result_to_xcom

        status.veo_task_id = status.veo_task_id or self.veo_task_id
        return result_to_xcom(status, output_path=self.hook.save_video(status, self.output_path))
