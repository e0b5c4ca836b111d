"""An offline stand-in for the AceData Cloud Veo API, with fault injection and counters.

Why it exists: the provider promises exactly-once paid submissions and survives 429/5xx,
timeouts, lost answers and late/duplicate/lost callbacks. Those promises can only be tested
against a server that misbehaves on demand and counts what it was asked to do. It is an
independent implementation of the vendor's contract (``shared/veo-api``): it shares only the
request models with the provider (so both refuse the same bodies) and never imports the hook.

Run it on its own with ``python -m veo_provider.testing.emulator --port 8089``; drive it from
tests in-process (``VeoEmulator``) or over HTTP (``/_emulator/...`` admin endpoints).

Layout: ``faults`` (fault models), ``jobs`` (``Job``, ``body_key``), ``state`` (``EmulatorConfig``,
``EmulatorState``: jobs, faults, counters), ``media`` (the MP4s served), ``asgi`` (counting
middleware, dropped answers, error shape), ``api`` (the vendor's routes), ``app``
(``create_app``, admin routes), ``server`` (``VeoEmulator``, uvicorn in a thread), ``recorder``
(``CallbackRecorder``, a callback-recording HTTP server) and ``cli`` (``python -m``).

Behaviour worth knowing (the contract the hook is tested against):

* Auth: ``authorization: Bearer <token>``; missing or wrong → 401 ``invalid_token``.
* Bad JSON or a body refused by ``veo_provider.models.build_request`` → 400 ``bad_request``.
  A 1080p fetch (``get1080p``/``get_1080p``) whose ``video_id`` is not a succeeded video of this
  emulator → 400 ``bad_request`` (so is any ``video_id`` with ``strict_video_ids``), and a video
  made by ``/veo/extend`` sent to reshoot/objects → 400.
* Unknown path or method → 404 ``no_api``. Unknown task id in ``/veo/tasks`` retrieve → 404
  ``not_found`` (batch retrieval simply omits unknown ids).
* Modes: no ``callback_url`` and no ``async`` → the request is held until the job is done; else
  ``{"task_id"}`` at once, and with a ``callback_url`` the final JSON is POSTed there.
* A failed job answers (sync), calls back and shows in ``/veo/tasks`` as
  ``{"success": false, "task_id", "trace_id", "error": {"code", "message"}}``; the sync answer's
  HTTP status is 200 unless the ``fail_jobs`` fault says otherwise.
* Videos: real, playable MP4s. Each new video shows the next of six pictures (its own colour and
  number: consecutive jobs differ); an upscale (``/veo/upsample`` 1080p/4k, the 1080p fetch, a
  ``resolution`` asked for) keeps its source's picture at 1920x1080 or 3840x2160 against the
  1280x720 original. ``?size=N`` (or the ``video_size`` fault) pads one to N bytes.
* Access log: every HTTP request (admin routes and downloads too) is kept, as a real API's access
  log would keep it: method, path, query string as received, status, and headers, with the values
  of credential headers (``authorization``, cookies, any name with auth/token/secret/key/signature/
  password) redacted (``Bearer [redacted]``). The token legitimately travels in the Authorization
  header; a token anywhere else (a query string, another header) shows up there, so secrets scans
  read it: ``VeoEmulator.access_log`` / ``access_log_text()`` or ``GET /_emulator/access_log``
  (``EmulatorConfig.access_log_size``, default 10,000 requests; 0 keeps none).
* ``drop_response`` creates the job and then closes the connection WITHOUT sending any byte
  of an answer (the client sees "server disconnected without sending a response", an
  ``httpx.RemoteProtocolError``). It relies on uvicorn closing the transport when the ASGI
  app returns a value; under another server the client gets a 500 instead. For "the job
  exists but the answer is a 500/504", use ``server_error``/``gateway_timeout`` with
  ``after_create``.
"""

from __future__ import annotations

from veo_provider.testing.emulator.app import create_app
from veo_provider.testing.emulator.cli import main
from veo_provider.testing.emulator.faults import (
    CallbackDelayFault,
    CallbackDuplicateFault,
    CallbackLoseFault,
    DelayFault,
    DownloadCutFault,
    DropResponseFault,
    ErrorFault,
    FailJobsFault,
    Faults,
    ModerationFault,
    RateLimitFault,
    UsedUpFault,
)
from veo_provider.testing.emulator.jobs import Job, body_key
from veo_provider.testing.emulator.media import clip_mp4, iter_mp4, mp4_length, sample_mp4
from veo_provider.testing.emulator.recorder import CallbackRecorder, ReceivedCallback
from veo_provider.testing.emulator.server import VeoEmulator
from veo_provider.testing.emulator.state import EmulatorConfig, EmulatorState

__all__ = [
    "CallbackDelayFault",
    "CallbackDuplicateFault",
    "CallbackLoseFault",
    "CallbackRecorder",
    "DelayFault",
    "DownloadCutFault",
    "DropResponseFault",
    "EmulatorConfig",
    "EmulatorState",
    "ErrorFault",
    "FailJobsFault",
    "Faults",
    "Job",
    "ModerationFault",
    "RateLimitFault",
    "ReceivedCallback",
    "UsedUpFault",
    "VeoEmulator",
    "body_key",
    "clip_mp4",
    "create_app",
    "iter_mp4",
    "main",
    "mp4_length",
    "sample_mp4",
]
