"""VeoOperator: one DAG step that turns a prompt or images into a video, paying once.

Cheap to import at DAG-parse time: the methods that run the task import the pydantic models and httpx.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from veo_provider import compat, resume_hold, spending
from veo_provider.deadlines import CALLBACK_GRACE, poll_outcome, timeout_error, wait_deadline
from veo_provider.lineage import VeoLineageMixin
from veo_provider.links import VeoVideoLink
from veo_provider.models.names import KNOWN_MODELS, REQUEST_ARGUMENTS
from veo_provider.operators.arguments import check_wait_arguments, resolve_wait_mode
from veo_provider.operators.failures import record_failure
from veo_provider.operators.preflight import check_argument_names, check_wait_connection
from veo_provider.resume_hold import CALLBACK_FIRST_CHECK, DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, first_check_at
from veo_provider.runtime import default_deferrable, event_of_an_earlier_try, try_number
from veo_provider.spending.limits import check_limit

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from veo_provider.hooks.veo import VeoHook
    from veo_provider.ledger import Ledger, LedgerEntry
    from veo_provider.models import TaskStatus, VeoEvent, VeoRequest

__all__ = ["VeoOperator"]


class VeoOperator(VeoLineageMixin, BaseOperator):
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
    :param image_urls: Public http(s) image URLs (the API fetches them from its side, so private,
        loopback and credentialed URLs are refused): 1-2 for image2video (first, last frame), 1-3
        for ingredients2video (templated).
    :param video_id: ``data[].id`` of an earlier result, for get1080p and the editing endpoints.
    :param resolution: ``1080p``, ``4k`` (veo31), ``gif``; omitted means 720p.
    :param aspect_ratio: ``16:9`` (default at the API), ``9:16``, ``3:4``, ``4:3``, ``1:1``.
    :param translation: Let the API translate the prompt to English.
    :param motion_type: Camera motion, for ``reshoot`` (e.g. ``LEFT_TO_RIGHT``).
    :param image_mask: Mask URL or base64 JPEG, for ``objects`` / ``remove``.
    :param extra_body: Extra JSON fields passed through unchanged (new API fields, e.g.
        ``{"duration": 8}``); they override nothing we validate.
    :param veo_conn_id: The Veo connection (default ``veo_default``).
    :param deferrable: Wait in the triggerer instead of holding a worker slot. Default ``True``,
        or the deployment's ``[operators] default_deferrable`` when it sets one. With ``False``
        the worker runs the very same wait loop.
    :param wait_for_completion: ``False`` returns right after submission (pair with VeoSensor).
    :param poll_interval: Seconds between status checks (default 15; the vendor asks for at
        most about one request a second per account, and checks are batched across tasks).
    :param first_poll_delay: Seconds before the first check (default 10). A deferred task checks
        first after at least 15 s: Airflow 3.3 fails a task resumed sooner than its deferral's
        executor event is processed (see "Airflow's resume race" in the reliability docs).
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
    :param safety_poll_interval: In callback mode, seconds between the slow safety-net checks
        that catch lost callbacks (default 300; batched across all waiting tasks).
    :param max_jobs_per_dag_run: Spending cap: at most this many paid submissions in one DAG run
        (all tasks that set it, retries and mapped copies included; resuming a paid job never counts
        again). Over it, the task fails before anything is sent. See also the connection extra
        ``daily_job_limit``.
    :param retries: Default 2 (not Airflow's 0) unless ``default_args`` set it: a retry resumes
        the job already paid for, and it covers Airflow's resume race (apache/airflow#66374).
    :param retry_delay: Default 30 seconds.
    :type execution_timeout: datetime.timedelta | None
    :param execution_timeout: Honoured across the deferral too (Airflow 3.3 does not,
        apache/airflow#69678): the try ends with a task timeout; a retry resumes the same job.

    Returns (XCom) a dict: task_id, video_id, video_url, state, trace_id, created_at,
    complete_at, model, action, output_path.
    """

    template_fields: Sequence[str] = ("endpoint", *REQUEST_ARGUMENTS, "extra_body", "output_path", "veo_conn_id")
    template_fields_renderers = {"extra_body": "json", "prompt": "md"}
    operator_extra_links = (VeoVideoLink(),)
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
        deferrable: bool | None = None,
        wait_for_completion: bool = True,
        poll_interval: float = 15.0,
        first_poll_delay: float = 10.0,
        timeout: float = 3600.0,
        output_path: str | None = None,
        reuse_existing_job: bool = True,
        on_uncertain_submission: str = "fail",
        wait_mode: str = "auto",
        safety_poll_interval: float = 300.0,
        max_jobs_per_dag_run: int | None = None,
        retries: int | None = DEFAULT_RETRIES,
        retry_delay: timedelta | float = DEFAULT_RETRY_DELAY,
        **kwargs: Any,
    ) -> None:
        check_argument_names(type(self), kwargs.get("task_id"), kwargs)  # Airflow's check, with "did you mean"
        super().__init__(retries=retries, retry_delay=retry_delay, **kwargs)
        check_wait_arguments(
            wait_mode=wait_mode,
            on_uncertain_submission=on_uncertain_submission,
            poll_interval=poll_interval,
            timeout=timeout,
            safety_poll_interval=safety_poll_interval,
            first_poll_delay=first_poll_delay,
        )
        check_limit("max_jobs_per_dag_run", max_jobs_per_dag_run)
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
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.first_poll_delay = first_poll_delay
        self.timeout = timeout
        self.output_path = output_path
        self.reuse_existing_job = reuse_existing_job
        self.on_uncertain_submission = on_uncertain_submission
        self.wait_mode = wait_mode
        self.safety_poll_interval = safety_poll_interval
        self.max_jobs_per_dag_run = max_jobs_per_dag_run

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """As ``BaseOperator.partial``, keeping ``retries=2`` and the 30 s delay for mapped tasks
        (before Airflow 3.3 ``partial()`` fills unset arguments with Airflow's defaults, not ours)."""
        if not compat.PARTIAL_APPLIES_OPERATOR_DEFAULTS:
            kwargs = resume_hold.with_default_retries(kwargs)
        return super().partial(**kwargs)

    # ------------------------------------------------------------------------------ request

    def build_request(self) -> VeoRequest:
        """Validate the rendered arguments; a bad request fails here, before any paid call."""
        from veo_provider.models.requests import VeoRequestError, request_from_arguments, unknown_extra_fields

        arguments = {name: getattr(self, name) for name in REQUEST_ARGUMENTS}
        try:
            request = request_from_arguments(self.endpoint, arguments, self.extra_body)
        except VeoRequestError as exc:
            raise AirflowFailException(str(exc)) from None
        for warning in unknown_extra_fields(self.endpoint, self.extra_body):
            self.log.warning(warning)
        return request

    @cached_property
    def hook(self) -> VeoHook:
        from veo_provider.hooks.veo import VeoHook

        return VeoHook(self.veo_conn_id)

    # ------------------------------------------------------------------------------ execute

    def execute(self, context: Context) -> Any:
        from veo_provider.ledger import Ledger, fingerprint
        from veo_provider.operators.resume import status_of_paid_job

        request = self.build_request()
        if self.output_path and self.wait_for_completion:
            from veo_provider.hooks.files import check_writable

            try:
                check_writable(self.output_path)  # before paying, not after
            except ValueError as exc:
                raise AirflowFailException(str(exc)) from None
        check_wait_connection(self.hook, waits=self.wait_for_completion, deferrable=self.deferrable, log=self.log)
        # Nothing will be waiting for a callback when the task returns right after submission.
        mode = (
            resolve_wait_mode(self.wait_mode, self.hook.settings, self.veo_conn_id)
            if self.wait_for_completion
            else "poll"
        )
        if self.model and self.model not in KNOWN_MODELS:
            self.log.warning("Model %r is not one we know; sending it as given.", self.model)
        ledger = Ledger.of(context, starting=True)
        if not ledger.durable:
            self.log.warning("No ledger for this task (no task state store): a retry after a crash may pay again.")

        entry = ledger.get()
        asked = fingerprint(request.path, request.to_body())
        if entry is not None and entry.fingerprint not in (None, asked):
            self.log.warning(
                "The request changed since the earlier try's submission (key %s, Veo job %s): submitting a new job.",
                entry.key,
                entry.veo_task_id,
            )
            entry = None
        if entry is not None and self.reuse_existing_job:
            if entry.veo_task_id is None:
                return self._resume_uncertain(context, ledger, entry, mode, request, asked)
            status = status_of_paid_job(self.hook, entry, self.on_uncertain_submission)
            if status is not None:
                self.log.info(
                    "Resuming Veo job %s (trace %s) from an earlier try: it is %s; not paying again.",
                    entry.veo_task_id,
                    entry.trace_id,
                    status.state.value,
                )
                return self._continue(context, ledger, entry, status, mode)
        return self._submit(context, ledger, request, mode, asked)

    def _resume_uncertain(
        self, context: Context, ledger: Ledger, entry: LedgerEntry, mode: str, request: VeoRequest, asked: str
    ) -> Any:
        """An earlier try's submission lost its answer: find its job, wait for it, or say how to resolve it."""
        from veo_provider.exceptions import HOW_TO_RESOLVE, uncertain_message
        from veo_provider.operators.resume import job_named_by_callback

        stored = ledger.stored_callback(entry)
        found = job_named_by_callback(self.hook, ledger, entry, stored.veo_task_id) if stored is not None else None
        if found is not None:
            return self._continue(context, ledger, *found, mode)
        if self.on_uncertain_submission == "resubmit":
            self.log.warning(
                "An earlier try's submission (key %s) may have created a job; resubmitting as "
                "on_uncertain_submission='resubmit' asks (this may pay twice).",
                entry.key,
            )
            return self._submit(context, ledger, request, mode, asked)
        if mode == "callback":
            self.log.warning("%s Waiting for its callback.", uncertain_message(entry.key, entry.at))
            return self._wait(context, entry, mode)
        raise AirflowFailException(f"{uncertain_message(entry.key, entry.at)} {HOW_TO_RESOLVE}")

    def _submit(self, context: Context, ledger: Ledger, request: VeoRequest, mode: str, asked: str) -> Any:
        from veo_provider.exceptions import HOW_TO_RESOLVE, VeoError, VeoSubmissionUncertain, uncertain_message
        from veo_provider.ledger import new_submission_key
        from veo_provider.models import decide_state
        from veo_provider.models.records import sent_summary
        from veo_provider.operators.resume import record_paid_job

        self.hook.check_image_hosts(request)  # before the ledger and the cap; never when resuming a paid job
        key = new_submission_key()
        if mode == "callback":
            request.callback_url = self._callback_url(context, key)  # the API answers {task_id} at once
        else:
            request.async_ = True
        caps = spending.caps(self.hook.settings.daily_job_limit, self.max_jobs_per_dag_run)
        sent = sent_summary(request.to_body())
        entry = ledger.submitting(key, self.endpoint, asked, self.veo_conn_id, sent, caps)
        spending.reserve(context, ledger, entry)  # over a cap: fails here, before anything is sent
        try:
            submission = self.hook.submit(request)
        except VeoSubmissionUncertain as exc:
            if mode == "callback" and self.wait_for_completion:
                # The URL carries our key: if the job exists, its callback tells us its id.
                self.log.warning("%s Waiting for the job's callback (submission key %s).", exc, key)
                return self._wait(context, entry, mode)
            raise AirflowFailException(f"{exc}\n{uncertain_message(entry.key, entry.at)} {HOW_TO_RESOLVE}") from exc
        except VeoError:
            # Refused, or provably never sent (connect failure): nothing was created, nothing paid,
            # so Airflow's own retry may submit again.
            spending.release(context, ledger, entry, self.log)
            ledger.forget()
            raise
        entry = record_paid_job(ledger, entry.submitted(submission.veo_task_id, submission.trace_id))
        if (push := getattr(context.get("ti"), "xcom_push", None)) is not None:  # unit tests may pass no ti
            push(key="veo_task_id", value=submission.veo_task_id)  # visible in the UI while the task waits
        self.log.info(
            "Submitted Veo job %s%s to %s%s.",
            submission.veo_task_id,
            f" (trace {submission.trace_id})" if submission.trace_id else "",
            request.path,
            f"; waiting by {mode}" if self.wait_for_completion else "",
        )
        status = submission.status
        stored = ledger.stored_callback(entry) if mode == "callback" and not status.state.done else None
        if stored is not None and stored.claims_done:
            self.log.info("A callback for Veo job %s came before the task deferred: checking it.", entry.veo_task_id)
            status = decide_state(self.hook.get_task(submission.veo_task_id))
        return self._continue(context, ledger, entry, status, mode)

    def _callback_url(self, context: Context, key: str) -> str:
        from veo_provider.callbacks.signing import CallbackTarget, sign_callback_url

        s = self.hook.settings
        assert s.callback_base_url and s.callback_secret
        expires_at = int(time.time() + self.timeout + CALLBACK_GRACE)
        target = CallbackTarget.of_task_instance(context["ti"], key, self.veo_conn_id, expires_at)
        return sign_callback_url(s.callback_base_url, target, s.callback_secret)

    def _continue(
        self,
        context: Context,
        ledger: Ledger,
        entry: LedgerEntry,
        status: TaskStatus,
        mode: str,
        deadline: float | None = None,
    ) -> Any:
        """Finish now if the job is done, else wait for it (until ``deadline`` when one is running)."""
        assert entry.veo_task_id is not None
        record_failure(context, status)  # before finished() raises: the Videos tab shows the reason
        if status.finished(entry.veo_task_id):
            return self._finish(context, status)
        if not self.wait_for_completion:
            status.veo_task_id = status.veo_task_id or entry.veo_task_id
            status.trace_id = status.trace_id or entry.trace_id
            return self._xcom(context, status)
        return self._wait(context, entry, mode, deadline)

    def _wait(self, context: Context, entry: LedgerEntry, mode: str, deadline: float | None = None) -> Any:
        """Defer on the trigger, or (``deferrable=False``) run the very same loop here."""
        from veo_provider.triggers.veo import VeoTrigger

        now = time.time()
        callback = mode == "callback"
        end = wait_deadline(context, now, self.timeout, self.execution_timeout, deadline)
        trigger = VeoTrigger(
            conn_id=self.veo_conn_id,
            veo_task_id=entry.veo_task_id,
            deadline=end,
            # In callback mode one early check covers a callback that raced the deferral.
            first_check_at=first_check_at(
                now,
                min(CALLBACK_FIRST_CHECK, self.safety_poll_interval) if callback else self.first_poll_delay,
                deferring=self.deferrable,
            ),
            poll_interval=self.safety_poll_interval if callback else self.poll_interval,
            submission_key=entry.key,
            wait_mode=mode,
            try_number=try_number(context),
        )
        if self.deferrable:
            self.defer(
                trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=max(end - now, 0) + 60)
            )
        return self.execute_complete(context, trigger.run_here())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Turn the trigger's (or the callback receiver's) event into the task's result or a clear failure."""
        from veo_provider.models import VeoEvent

        ev = VeoEvent.read(event)
        if event_of_an_earlier_try(context, ev.deferred_in_try):
            self.log.info("Began with try %s's event (Airflow 3.0 keeps it): starting afresh.", ev.deferred_in_try)
            return self.execute(context)
        self.log.info("Veo job %s: %s after %.0fs (%s).", ev.veo_task_id, ev.status, ev.elapsed or 0, ev.source)
        if ev.source == "callback":
            return self._woken_by_callback(context, ev)
        if ev.status == "failed":  # before poll_outcome raises: the Videos tab shows the reason
            record_failure(context, ev.job_status())
        status = poll_outcome(ev)
        if status is None:
            raise timeout_error(context, ev, self.timeout, self.execution_timeout)
        return self._finish(context, status)

    def _woken_by_callback(self, context: Context, ev: VeoEvent) -> Any:
        """A callback is only a wake-up: the state and the video URL come from one read of the API."""
        from veo_provider.ledger import Ledger
        from veo_provider.models import decide_state
        from veo_provider.operators.resume import job_named_by_callback

        ledger = Ledger.of(context)
        entry = ledger.get()
        if entry is None or entry.key != ev.submission_key:
            raise AirflowException(
                f"A callback woke this task for submission {ev.submission_key}, but its ledger holds "
                f"{entry.key if entry else 'nothing'}; a retry resumes from the ledger."
            )
        if entry.veo_task_id is None:
            found = job_named_by_callback(self.hook, ledger, entry, ev.veo_task_id)
            if found is None:
                return self._wait(context, entry, "callback", ev.deadline)
            entry, status = found
        elif ev.veo_task_id not in (None, entry.veo_task_id):
            self.log.warning("A callback named Veo job %s, not this task's job: ignoring it.", ev.veo_task_id)
            return self._wait(context, entry, "callback", ev.deadline)
        else:
            status = decide_state(self.hook.get_task(entry.veo_task_id))
        if not status.state.done:
            self.log.info(
                "Woken by a callback, but the API says Veo job %s is %s: waiting on.",
                entry.veo_task_id,
                status.state.value,
            )
        return self._continue(context, ledger, entry, status, "callback", ev.deadline)

    def _finish(self, context: Context, status: TaskStatus) -> dict[str, Any]:
        from veo_provider.ledger import Ledger

        result = self._xcom(context, status, self.hook.save_video(status, self.output_path))
        push = getattr(context.get("ti"), "xcom_push", None)  # unit tests may pass no ti
        for key in ("video_id", "video_url"):  # so that op.output["video_id"] works
            if push is not None:
                push(key=key, value=result[key])
        self.record_lineage(context, result)  # asset events for the task's outlets; OpenLineage facets
        Ledger.of(context).job_done()  # before Airflow 3.3: its Variables go with the job
        return result

    def _xcom(self, context: Context, status: TaskStatus, output_path: str | None = None) -> dict[str, Any]:
        from veo_provider.ledger import Ledger
        from veo_provider.models.records import SENT_KEYS, result_to_xcom

        entry = Ledger.of(context).get()
        if entry is None or entry.sent is None:  # no ledger (no task state store): what the arguments ask for
            sent = {key: getattr(self, key, None) for key in SENT_KEYS}
            sent["action"] = sent["action"] or ("text2video" if self.endpoint == "videos" else None)
        return result_to_xcom(status, sent=entry.sent if entry and entry.sent else sent, output_path=output_path)
