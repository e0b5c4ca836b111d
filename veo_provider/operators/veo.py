"""VeoOperator: one DAG step that turns a prompt or images into a video, paying once.

Import stays cheap at DAG-parse time: the hook (httpx) and the trigger are imported in execute().
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from veo_provider.ledger import Ledger, LedgerEntry, new_submission_key
from veo_provider.models import (
    ENDPOINTS,
    KNOWN_MODELS,
    TaskState,
    TaskStatus,
    VeoRequest,
    VeoRequestError,
    build_request,
    decide_state,
    result_to_xcom,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from veo_provider.hooks.veo import VeoHook
    from veo_provider.triggers.veo import VeoTrigger

__all__ = ["VeoOperator"]

WAIT_MODES = ("auto", "poll", "callback")
ON_UNCERTAIN = ("fail", "resubmit")


class VeoOperator(BaseOperator):
    """Generate (or upscale, extend, reshoot, edit) a video with Veo and wait for it without a worker slot.

    One operator covers every paid endpoint: ``endpoint`` picks it, and the other arguments
    mirror the API's fields, so the API docs read straight into a DAG.

    :param endpoint: ``videos`` (default), ``upsample``, ``extend``, ``reshoot`` or ``objects``.
    :param action: For ``videos``: ``text2video`` (default), ``image2video``, ``ingredients2video``,
        ``get1080p`` (or ``get_1080p``). For ``upsample``: ``1080p``/``4k``/``gif``. For
        ``objects``: ``insert``/``remove``.
    :param model: ``veo3``, ``veo3-fast``, ``veo31``, ``veo31-fast``, ``veo31-fast-ingredients``,
        ``veo2``, ``veo2-fast``; a newer model's exact id is sent as given.
    :param prompt: What to generate (templated).
    :param image_urls: http(s) image URLs: 1-2 for image2video (first, last frame), 1-3 for
        ingredients2video (templated).
    :param video_id: ``data[].id`` of an earlier result, for get1080p and the editing endpoints.
    :param resolution: ``1080p``, ``4k`` (veo31), ``gif``; omitted means 720p.
    :param aspect_ratio: ``16:9`` (default at the API), ``9:16``, ``3:4``, ``4:3``, ``1:1``.
    :param translation: Let the API translate the prompt to English.
    :param motion_type: Camera motion, for ``reshoot`` (e.g. ``LEFT_TO_RIGHT``).
    :param image_mask: Mask URL or base64 JPEG, for ``objects`` / ``remove``.
    :param extra_body: Extra JSON fields passed through unchanged (new API fields, e.g.
        ``{"duration": 8}``); they override nothing we validate.
    :param veo_conn_id: The Veo connection (default ``veo_default``).
    :param deferrable: Wait in the triggerer (default) instead of holding a worker slot. With
        ``False`` the worker runs the very same wait loop.
    :param wait_for_completion: ``False`` returns right after submission (pair with VeoSensor).
    :param poll_interval: Seconds between status checks (default 15; the vendor asks for at
        most about one request a second per account, and checks are batched across tasks).
    :param first_poll_delay: Seconds before the first check (default 10).
    :param timeout: Seconds to wait for the video (default 3600). On timeout the task fails;
        a retry resumes waiting on the same job, it does not pay again.
    :param output_path: Where to stream the finished video: a local path or any
        ObjectStoragePath URL such as ``file:///data/videos/{{ ds }}/{{ ti.map_index }}.mp4``
        (templated). Not set: only the URL is returned.
    :param reuse_existing_job: When this task instance already paid for a job (an earlier try),
        resume it instead of submitting again (default). ``False`` always submits a new job.
    :param on_uncertain_submission: A submission whose answer was lost (the job may exist):
        ``fail`` (default; says how to resolve it) or ``resubmit`` (accepts paying twice).
    :param wait_mode: ``auto`` (callback when the connection has a public callback base URL,
        else poll), ``poll`` or ``callback``.
    :param confirm_callback: Check a callback-reported success with one status read (default),
        so a leaked callback URL cannot forge a result.

    Returns (XCom) a dict: task_id, video_id, video_url, state, trace_id, created_at,
    complete_at, model, action, output_path.
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "action",
        "model",
        "prompt",
        "image_urls",
        "video_id",
        "resolution",
        "aspect_ratio",
        "translation",
        "motion_type",
        "image_mask",
        "extra_body",
        "output_path",
        "veo_conn_id",
    )
    template_fields_renderers = {"extra_body": "json", "prompt": "md"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        endpoint: str = "videos",
        action: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
        image_urls: list[str] | None = None,
        video_id: str | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        translation: bool | None = None,
        motion_type: str | None = None,
        image_mask: str | None = None,
        extra_body: dict[str, Any] | None = None,
        veo_conn_id: str = "veo_default",
        deferrable: bool = True,
        wait_for_completion: bool = True,
        poll_interval: float = 15.0,
        first_poll_delay: float = 10.0,
        timeout: float = 3600.0,
        output_path: str | None = None,
        reuse_existing_job: bool = True,
        on_uncertain_submission: str = "fail",
        wait_mode: str = "auto",
        confirm_callback: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if wait_mode not in WAIT_MODES:
            raise ValueError(f"wait_mode {wait_mode!r} is unknown: use one of {', '.join(WAIT_MODES)}")
        if on_uncertain_submission not in ON_UNCERTAIN:
            raise ValueError(
                f"on_uncertain_submission {on_uncertain_submission!r} is unknown: use 'fail' or 'resubmit'"
            )
        for name, value in (("poll_interval", poll_interval), ("timeout", timeout)):
            if value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds (got {value!r})")
        if isinstance(image_urls, str):
            image_urls = [image_urls]
        self.endpoint = endpoint
        self.action = action
        self.model = model
        self.prompt = prompt
        self.image_urls = image_urls
        self.video_id = video_id
        self.resolution = resolution
        self.aspect_ratio = aspect_ratio
        self.translation = translation
        self.motion_type = motion_type
        self.image_mask = image_mask
        self.extra_body = extra_body
        self.veo_conn_id = veo_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.first_poll_delay = first_poll_delay
        self.timeout = timeout
        self.output_path = output_path
        self.reuse_existing_job = reuse_existing_job
        self.on_uncertain_submission = on_uncertain_submission
        self.wait_mode = wait_mode
        self.confirm_callback = confirm_callback

    # ------------------------------------------------------------------------------ request

    def build_request(self) -> VeoRequest:
        """Validate the rendered arguments; a bad request fails here, before any paid call."""
        explicit = {
            "action": self.action or ("text2video" if self.endpoint == "videos" else None),
            "model": self.model,
            "prompt": self.prompt,
            "image_urls": [self.image_urls] if isinstance(self.image_urls, str) else self.image_urls,
            "video_id": self.video_id,
            "resolution": self.resolution,
            "aspect_ratio": self.aspect_ratio,
            "translation": self.translation,
            "motion_type": self.motion_type,
            "image_mask": self.image_mask,
        }
        explicit = {k: v for k, v in explicit.items() if v is not None}
        model = ENDPOINTS.get(self.endpoint)
        if model is not None and (unused := sorted(set(explicit) - set(model.model_fields))):
            raise AirflowFailException(
                f"Invalid Veo request: {', '.join(unused)} not taken by endpoint {self.endpoint!r}: remove "
                "them, or choose the endpoint that takes them"
            )
        fields = {**(self.extra_body or {}), **explicit}
        try:
            return build_request(self.endpoint, **fields)
        except VeoRequestError as exc:
            raise AirflowFailException(str(exc)) from None

    @property
    def hook(self) -> VeoHook:
        from veo_provider.hooks.veo import VeoHook

        if getattr(self, "_hook", None) is None:
            self._hook = VeoHook(self.veo_conn_id)
        return self._hook

    def _resolved_wait_mode(self) -> str:
        if self.wait_mode != "auto":
            return self.wait_mode
        return "callback" if self.hook.settings.callback_base_url else "poll"

    # ------------------------------------------------------------------------------ execute

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        if self.model and self.model not in KNOWN_MODELS:
            self.log.warning("Model %r is not one we know; sending it as given.", self.model)
        ledger = Ledger(context.get("task_state_store"))
        if not ledger.durable:
            self.log.warning("No task_state_store in the context: a retry after a crash may pay again.")

        entry = ledger.get()
        if entry is not None and entry.task_id and self.reuse_existing_job:
            status = decide_state(self.hook.get_task(entry.task_id))
            if status.state is TaskState.FAILED:
                self.log.warning(
                    "The job this task paid for earlier (%s) failed at the API (%s: %s); submitting a new one.",
                    entry.task_id,
                    status.error_code,
                    status.error_message,
                )
            else:
                self.log.info(
                    "Resuming Veo job %s (trace %s) from an earlier try: it is %s; not paying again.",
                    entry.task_id,
                    entry.trace_id,
                    status.state.value,
                )
                return self._continue(context, entry, status)
        elif entry is not None and entry.state == "submitting" and self.reuse_existing_job:
            if self.on_uncertain_submission == "fail":
                raise AirflowFailException(_uncertain_message(entry))
            self.log.warning(
                "An earlier try's submission (key %s) may have created a job; resubmitting as "
                "on_uncertain_submission='resubmit' asks (this may pay twice).",
                entry.key,
            )
        return self._submit(context, ledger, request)

    def _submit(self, context: Context, ledger: Ledger, request: VeoRequest) -> Any:
        from veo_provider.exceptions import VeoError, VeoSubmissionUncertain

        key = new_submission_key()
        request.async_ = True
        entry = ledger.submitting(key, self.endpoint)
        try:
            submission = self.hook.submit(request)
        except VeoSubmissionUncertain as exc:
            raise AirflowFailException(f"{exc}\n{_uncertain_message(entry)}") from exc
        except VeoError:
            ledger.forget()  # the API refused it: nothing was created, nothing paid
            raise
        entry = ledger.submitted(entry, submission.task_id, submission.trace_id)
        self.log.info("Submitted Veo job %s (trace %s) to %s.", submission.task_id, submission.trace_id, request.path)
        return self._continue(context, entry, submission.status)

    def _continue(self, context: Context, entry: LedgerEntry, status: TaskStatus) -> Any:
        """Finish now if the job is done, else wait for it (or return at once if asked)."""
        assert entry.task_id is not None
        if status.state is TaskState.SUCCEEDED:
            return self._finish(context, status)
        if status.state is TaskState.FAILED:
            from veo_provider.exceptions import VeoJobFailedError

            raise VeoJobFailedError.of(entry.task_id, status.error_code, status.error_message, status.trace_id)
        if not self.wait_for_completion:
            status.task_id = status.task_id or entry.task_id
            status.trace_id = status.trace_id or entry.trace_id
            return self._xcom(status)
        trigger = self._trigger(entry)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout + 60))
        return self.execute_complete(context, asyncio.run(trigger.wait()))

    def _trigger(self, entry: LedgerEntry) -> VeoTrigger:
        from veo_provider.triggers.veo import VeoTrigger

        assert entry.task_id is not None
        return VeoTrigger(
            conn_id=self.veo_conn_id,
            task_id=entry.task_id,
            deadline=time.time() + self.timeout,
            poll_interval=self.poll_interval,
            first_poll_delay=self.first_poll_delay,
            submission_key=entry.key,
            wait_mode=self._resolved_wait_mode(),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Turn the trigger's one event into the task's result (or a clear failure)."""
        from veo_provider.triggers.veo import event_status

        task_id = str(event.get("veo_task_id"))
        self.log.info(
            "Veo job %s: %s after %.0fs (%s).",
            task_id,
            event.get("status"),
            event.get("elapsed") or 0,
            event.get("source"),
        )
        status = event_status(event)
        if status is None:
            raise AirflowException(
                f"Veo job {task_id} did not finish within timeout={self.timeout:.0f}s "
                f"(last seen: {event.get('last_state') or 'unknown'}). A retry of this task resumes "
                "waiting on the same job; it does not pay again."
            )
        if event.get("source") == "callback" and self.confirm_callback:
            status = decide_state(self.hook.get_task(task_id))  # a leaked URL cannot forge a result
            if status.state is not TaskState.SUCCEEDED:
                raise AirflowException(
                    f"A callback reported Veo job {task_id} succeeded, but the API says it is "
                    f"{status.state.value}; not trusting the callback."
                )
        return self._finish(context, status)

    def _finish(self, context: Context, status: TaskStatus) -> dict[str, Any]:
        output_path = None
        url = status.result.data[0].video_url if status.result and status.result.data else None
        if self.output_path and url:
            self.log.info("Downloading the video of Veo job %s to %s", status.task_id, self.output_path)
            output_path = self.hook.download(url, self.output_path)
        return self._xcom(status, output_path)

    def _xcom(self, status: TaskStatus, output_path: str | None = None) -> dict[str, Any]:
        return result_to_xcom(status, model=self.model, action=self.action, output_path=output_path)


def _uncertain_message(entry: LedgerEntry) -> str:
    return (
        f"An earlier submission of this task (submission key {entry.key}, at {entry.at}) may have "
        "created a Veo job whose task id never reached Airflow. It was not resubmitted, to avoid "
        "paying twice. To resolve: look for the job in the AceData Cloud console; if none exists, "
        "clear this task with on_uncertain_submission='resubmit' (or delete the task state key "
        "'veo_submission'); with wait_mode='callback' the job's callback finds it automatically."
    )
