"""Fetching a video: every hop's address checked, redirects followed by hand, bytes capped.

Why by hand: httpx's own redirect following would connect to each new location before we
could look at it. Here every hop (the ``video_url`` and each ``Location``) passes the address
policy before a connection is made, and the connection itself goes only to the addresses the
policy accepted (``clients.download_client``). Nothing is written before the final answer.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from veo_provider import addresses
from veo_provider.exceptions import (
    VeoAddressError,
    VeoError,
    VeoRedirectError,
    VeoServerError,
    VeoTransportError,
    error_from_response,
)
from veo_provider.hooks import files
from veo_provider.hooks.clients import MAX_REDIRECTS

__all__ = ["VideoHosts", "fetch", "redact"]

_FIX = (
    "nothing was downloaded. Loopback and private video hosts are allowed only when the Veo connection's "
    "own Base URL is loopback or private (the offline emulator, a private gateway); see docs/connection.md"
)


def redact(url: str) -> str:
    """A URL without its query string (signed CDN links carry credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class VideoHosts:
    """The address policy for downloads of one connection: global addresses only, unless the
    connection's API host is itself loopback or private (then its videos may be too)."""

    def __init__(self, api_host: str) -> None:
        self.api_host = api_host
        self._private_api: bool | None = None

    def private_api(self) -> bool:
        """Asked only when a host is refused, so a public download costs no extra DNS lookup."""
        if self._private_api is None:
            self._private_api = addresses.is_private_host(self.api_host)
        return self._private_api

    def _checked(self, check: Callable[[bool], object]) -> None:
        """Run ``check`` strictly; when it refuses and the API host is private, allow private too."""
        try:
            check(False)
        except addresses.AddressRefused as strict:
            refusal = strict
            if self.private_api():
                try:
                    check(True)
                    return
                except addresses.AddressRefused as exc:
                    refusal = exc
            raise VeoAddressError(str(refusal)) from None

    def check_url(self, what: str, url: str) -> None:
        """Refuse, before connecting, a hop whose URL or host text is refused."""
        self._checked(lambda allow: addresses.check_url(what, url, allow_private=allow, fix=_FIX))

    def connect_check(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host`` (one DNS lookup), each accepted by the policy."""
        try:
            name = addresses.normalise_host(host)
            found = addresses.resolve(name, port)
        except (OSError, ValueError) as exc:  # httpx reports it as the ConnectError it is
            raise httpcore.ConnectError(f"could not resolve the video host {host!r}: {exc}") from None
        what = "A download may connect only to public addresses"
        self._checked(lambda allow: addresses.check_addresses(what, name, found, allow_private=allow, fix=_FIX))
        return [str(a) for a in found]


def _open(client: httpx.Client, url: str, hosts: VideoHosts, timeout: httpx.Timeout) -> httpx.Response:
    """The streamed final answer for ``url``, every redirect hop checked before it is fetched."""
    current, what = url, "video_url"
    for hop in range(MAX_REDIRECTS + 1):
        hosts.check_url(f"{what} {redact(current)!r}", current)
        response = client.send(client.build_request("GET", current, timeout=timeout), stream=True)
        if not (response.is_redirect and "location" in response.headers):
            return response
        response.close()
        try:
            current = str(response.url.join(response.headers["location"]))
        except httpx.InvalidURL:
            raise VeoAddressError(
                f"{redact(url)} redirected to something that is no URL; nothing was downloaded"
            ) from None
        what = f"the redirect {hop + 1} of video_url to"
    raise VeoRedirectError(
        f"GET {redact(url)} was redirected more than {MAX_REDIRECTS} times (a redirect loop?): check the URL"
    )


def fetch(
    client: httpx.Client,
    url: str,
    target: Any,
    *,
    hosts: VideoHosts,
    timeout: httpx.Timeout,
    limit: int,
    too_large: Callable[[int, bool], VeoError],
) -> None:
    """Stream ``url`` (after its checked redirects) into ``target``, all or nothing, capped at ``limit``."""
    response = _open(client, url, hosts, timeout)
    try:
        if response.status_code >= 400:
            response.read()
            raise error_from_response(response.status_code, _json_or_none(response), response.headers)
        _check_video_type(response, url)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            # We asked for identity: a compressed answer would inflate a whole chunk in memory.
            raise VeoServerError(
                f"{redact(url)} answered Content-Encoding {encoding!r} though identity was asked; nothing was written",
                status=response.status_code,
            )
        declared = files.content_length(response.headers)
        if declared is not None and declared > limit:
            raise too_large(declared, False)  # before anything is written
        # As the network delivers it: re-chunking to a fixed size copies every byte again.
        chunks = files.capped(response.iter_raw(), limit, too_large)
        chunks = files.exactly(chunks, declared, functools.partial(_short_body, url))
        files.write(target, chunks)
    finally:
        response.close()


#: What a CDN or proxy answers instead of a video (an error or login page) even with a 200.
_NOT_VIDEO = re.compile(r"^(text/|application/(json|xml|problem)|[^;]*\+(json|xml))", re.IGNORECASE)


def _check_video_type(response: httpx.Response, url: str) -> None:
    kind = response.headers.get("content-type", "")
    if _NOT_VIDEO.match(kind.strip()):
        raise VeoServerError(
            f"{redact(url)} answered {kind.split(';')[0]!r}, not a video (an error page?); nothing was written",
            status=response.status_code,
        )


def _short_body(url: str, got: int, declared: int) -> VeoTransportError:
    return VeoTransportError(f"GET {redact(url)} ended after {got:,} of {declared:,} bytes; nothing was written")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
