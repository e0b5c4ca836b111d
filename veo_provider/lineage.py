"""Assets and lineage of a written video: the asset event's metadata and the OpenLineage facets.

Declare the written file as an Airflow Asset on the task (``outlets=[output_asset(...)]``) and
downstream DAGs scheduled on that Asset run on each new video. A Veo operator (``VeoLineageMixin``)
calls ``record_lineage`` once the video is written: the asset event carries the video's metadata
(``emit_asset_event``) and, with the OpenLineage provider installed (extra ``openlineage``),
``openlineage_facets`` describes the run: inputs (image URLs), output (the file), the Veo job.

No HTTP here and no secrets: URLs lose their query string, fragment and user info.
OpenLineage is imported only when its facets are asked for."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import Asset, AssetAlias

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "VeoLineageMixin",
    "asset_extra",
    "dataset_naming",
    "emit_asset_event",
    "openlineage_facets",
    "output_asset",
]

log = logging.getLogger(__name__)

#: Object stores whose OpenLineage namespace is ``scheme://bucket`` and name the key (no leading slash).
_BUCKET_SCHEMES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs"}
_TEMPLATE = re.compile(r"{{|{%")
#: The XCom keys an asset event carries (``task_id`` is the Veo job: renamed ``veo_task_id``).
_EXTRA_KEYS = (
    "video_id",
    "video_url",
    "model",
    "action",
    "state",
    "output_path",
    "trace_id",
    "created_at",
    "complete_at",
    "prompt",
    "resolution",
)
#: Keys some XCom results carry: copied when present.
_EXTRA_OPTIONAL = ("aspect_ratio",)
#: Request fields worth recording as OpenLineage execution parameters (never an image mask: base64).
_PARAMETERS = ("endpoint", "action", "model", "resolution", "aspect_ratio", "video_id", "prompt", "trace_id")
#: What the XCom result says was sent (its ``video_id`` is the output's, not the request's).
_SENT = ("model", "action", "prompt", "resolution", "trace_id")
_MAX_PARAMETER = 1000
#: The operator arguments ``VeoLineageMixin`` reads for the OpenLineage request summary.
_REQUEST_FIELDS = ("endpoint", "action", "model", "prompt", "image_urls", "video_id", "resolution", "aspect_ratio")


# ------------------------------------------------------------------------------ naming


def _redact(uri: str) -> str:
    """``uri`` without user info, query string or fragment (signed links carry credentials there)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _static_part(path: str) -> str:
    """The part of a templated path before its first Jinja tag, cut back to a whole folder."""
    match = _TEMPLATE.search(path)
    if match is None:
        return path
    head = path[: match.start()]
    return head[: head.rfind("/") + 1] if "/" in head else ""


def output_asset(output_path: str, *, name: str | None = None, **asset_kwargs: Any) -> Asset:
    """The Asset for videos written to ``output_path``, to declare as the task's outlet.

    ``output_path`` is what the operator's ``output_path`` gets: an absolute local path or a URL
    (``file://``, ``s3://``, ...). A templated path (``.../{{ ds }}/{{ ti.map_index }}.mp4``) gives
    the folder before the first template tag (``.../``): one Asset for all the videos written there.
    Extra keyword arguments (``group``, ``extra``, ...) go to ``Asset``.
    """
    static = _static_part(output_path)
    uri = _redact(static)
    if "://" not in uri:
        if not os.path.isabs(uri):
            raise ValueError(
                f"output_asset needs an absolute path or a URL (file://, s3://, ...), not {output_path!r}: "
                "a relative path depends on the worker's working directory"
            )
        uri = "file://" + uri
    uri = uri.rstrip("/")
    if uri.endswith(":/") or uri.endswith(":"):
        raise ValueError(f"output_asset needs a folder or a file before the first template tag in {output_path!r}")
    return Asset(uri=uri, name=name or uri, **asset_kwargs)


def _written_asset(output_path: str) -> Asset:
    """The Asset of the file just written (a relative local path is the worker's, made absolute)."""
    if "://" not in output_path:
        output_path = os.path.abspath(output_path)
    return output_asset(output_path)


def dataset_naming(location: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a written file or a URL, per OpenLineage's naming conventions.

    Local path or ``file:///p``: (``file``, ``/p``); ``file://host/p``: (``file://host``, ``/p``);
    ``s3://bucket/key``: (``s3://bucket``, ``key``); ``gs://bucket/key``: (``gs://bucket``, ``key``);
    any other URL (``https://cdn/v.mp4``): (``scheme://host``, ``/path``).
    """
    location = _redact(location)
    if "://" not in location:
        return "file", os.path.abspath(location)
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("file", "local"):
        host = parts.netloc if parts.netloc not in ("", "localhost") else ""
        return (f"file://{host}" if host else "file"), parts.path or "/"
    if scheme in _BUCKET_SCHEMES:
        return f"{_BUCKET_SCHEMES[scheme]}://{parts.netloc}", parts.path.lstrip("/") or "/"
    return f"{scheme}://{parts.netloc}", parts.path or "/"


# ------------------------------------------------------------------------------ asset events


def _jsonable(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def asset_extra(xcom_result: Mapping[str, Any]) -> dict[str, Any]:
    """The asset event's ``extra``: the video's metadata from the XCom result, JSON-able, no secret."""
    extra: dict[str, Any] = {"veo_task_id": _jsonable(xcom_result.get("task_id"))}
    for key in _EXTRA_KEYS:
        extra[key] = _jsonable(xcom_result.get(key))
    for key in _EXTRA_OPTIONAL:
        if xcom_result.get(key) is not None:
            extra[key] = _jsonable(xcom_result[key])
    for key in ("video_url", "output_path"):
        if extra.get(key):
            extra[key] = _redact(extra[key])
    return extra


def emit_asset_event(context: Mapping[str, Any], task: Any, xcom_result: Mapping[str, Any]) -> dict[str, Any] | None:
    """Attach the video's metadata to the asset events of ``task``'s outlets; the extra set, or None.

    Every ``Asset`` outlet's event gets the metadata. An ``AssetAlias`` outlet gets an event for
    the written file's own Asset (one Asset per file, e.g. for mapped tasks). No outlets, no
    ``outlet_events`` in the context (unit tests), or nothing written for an alias: nothing to do.
    A failure here only logs: the video is paid for and written, lineage must not fail the task.
    """
    outlets = list(getattr(task, "outlets", None) or [])
    events = context.get("outlet_events")
    if not outlets or events is None:
        return None
    extra = asset_extra(xcom_result)
    try:
        for outlet in outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update(extra)
            elif isinstance(outlet, AssetAlias) and extra.get("output_path"):
                events[outlet].add(_written_asset(extra["output_path"]), extra=dict(extra))
    except Exception as exc:
        log.warning("Could not attach the video's metadata to the asset events: %s", exc)
        return None
    return extra


# ------------------------------------------------------------------------------ OpenLineage


def _parameters(xcom_result: Mapping[str, Any], request_summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Request fields as asked, overlaid with what the result says was sent (e.g. the default action)."""
    merged = {key: value for key, value in request_summary.items() if value is not None}
    merged.update({key: xcom_result[key] for key in _SENT if xcom_result.get(key) is not None})
    return [(key, str(merged[key])[:_MAX_PARAMETER]) for key in _PARAMETERS if merged.get(key) not in (None, "", [])]


def _execution_parameters(parameters: list[tuple[str, str]]) -> Any | None:
    """The ``executionParameters`` run facet; None without parameters or on an older OpenLineage client."""
    try:
        from openlineage.client.facet_v2 import execution_parameters_run as ep
    except ImportError:
        return None
    if not parameters:
        return None
    return ep.ExecutionParametersRunFacet(parameters=[ep.ExecutionParameter(key=k, value=v) for k, v in parameters])


def _input_urls(request_summary: Mapping[str, Any]) -> list[str]:
    urls = request_summary.get("image_urls") or []
    if isinstance(urls, str):
        urls = [urls]
    return [u for u in urls if isinstance(u, str) and u.lower().startswith(("http://", "https://"))]


def openlineage_facets(
    xcom_result: Mapping[str, Any] | None, request_summary: Mapping[str, Any] | None = None
) -> OperatorLineage | None:
    """The OpenLineage lineage of one Veo run; None when the OpenLineage provider is not installed.

    Output: the written file (``output_path``), else the video URL (without its query string).
    Inputs: the http(s) image URLs sent. Run facets: ``externalQuery`` (the Veo job id, source
    ``veo``) and ``executionParameters`` (endpoint, model, action, resolution, prompt, trace id, ...).
    ``request_summary`` is the rendered request arguments (``endpoint``, ``model``, ``image_urls``, ...).
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
        from openlineage.client.facet_v2 import external_query_run
    except ImportError:
        return None
    result = xcom_result or {}
    summary = request_summary or {}
    location = result.get("output_path") or result.get("video_url")
    outputs = [Dataset(*dataset_naming(location))] if location else []
    inputs = [Dataset(*dataset_naming(url)) for url in _input_urls(summary)]
    run_facets: dict[str, Any] = {}
    if result.get("task_id"):
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=str(result["task_id"]), source="veo"
        )
    parameters = _execution_parameters(_parameters(result, summary))
    if parameters is not None:
        run_facets["executionParameters"] = parameters
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


# ------------------------------------------------------------------------------ operator mixin


class VeoLineageMixin:
    """Lineage for a Veo operator: call ``record_lineage(context, result)`` once the video is written.

    It attaches the video's metadata to the task's asset events at once, and keeps the result for
    ``get_openlineage_facets_on_complete``, which the OpenLineage provider (when installed) calls
    in the same process after the task succeeds.
    """

    _veo_lineage_result: dict[str, Any] | None = None

    def record_lineage(self, context: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        emit_asset_event(context, self, result)
        self._veo_lineage_result = dict(result)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        request = {name: getattr(self, name, None) for name in _REQUEST_FIELDS}
        return openlineage_facets(self._veo_lineage_result, request)
