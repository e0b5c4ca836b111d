"""The Veo connection's settings, defined once: defaults, parsing, secrets, and the form.

The hook reads its settings here, the provider info builds the connection form from the same
table, and the callback receiver reads the callback secrets here. Import-light (stdlib only at
import time; httpx is imported when a URL is parsed): ``get_provider_info`` runs at every start.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseHook, Connection

__all__ = [
    "DEFAULT_BASE_URL",
    "EXTRAS",
    "VeoSettings",
    "aread_settings",
    "callback_secrets",
    "connection_form",
    "did_you_mean",
    "read_extra_async",
    "read_settings",
]

DEFAULT_BASE_URL = "https://api.acedata.cloud"
GET_1080P = "get1080p"  # the spelling of the current spec (models.requests has the aliases)


@dataclass(frozen=True)
class Extra:
    """One connection extra: its default, how the form shows it, and how it is parsed."""

    default: Any
    label: str
    schema: dict[str, Any]
    description: str | None = None

    def form(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.description:
            out["description"] = self.description
        schema = dict(self.schema)
        if self.default is not None:
            schema["default"] = self.default
        out["schema"] = schema
        return out


_NUMBER = {"type": ["number", "null"], "minimum": 1}
_SECRET = {"type": ["string", "null"], "format": "password"}

#: Every extra the ``veo`` connection understands (the token is the connection's password).
EXTRAS: dict[str, Extra] = {
    "timeout": Extra(
        30,
        "Read timeout (seconds)",
        _NUMBER,
        "Timeout of one HTTP read; submissions wait longer when the API answers synchronously (see submit_timeout).",
    ),
    "connect_timeout": Extra(
        10, "Connect timeout (seconds)", _NUMBER, "How long to wait for a TCP/TLS connection to the API."
    ),
    "submit_timeout": Extra(
        600,
        "Synchronous submission timeout (seconds)",
        _NUMBER,
        "Only used when a submission asks the API to hold the request until the video is done "
        "(no callback, not async).",
    ),
    "max_retries": Extra(
        5,
        "Read retries",
        {"type": ["integer", "null"], "minimum": 1},
        "Attempts for reads on 429/5xx/transport errors. Paid submissions are never resent once they "
        "may have reached the API.",
    ),
    "max_download_mb": Extra(
        4096,
        "Largest video to download (MB)",
        _NUMBER,
        "A video larger than this is refused before or while streaming; nothing is left at output_path.",
    ),
    "daily_job_limit": Extra(
        None,
        "Paid jobs per UTC day",
        {"type": ["integer", "null"], "minimum": 1},
        "Spending cap: at most this many paid submissions through this connection per UTC day, across "
        "all DAGs, hosts and retries (counted in Airflow's metadata database). Empty: no cap.",
    ),
    "get1080p_action": Extra(
        GET_1080P,
        "1080p fetch action spelling",
        {"type": ["string", "null"], "enum": ["get1080p", "get_1080p"]},
        "How this API spells the 1080p fetch action.",
    ),
    "callback_base_url": Extra(
        None,
        "Public callback base URL",
        {"type": ["string", "null"], "format": "url"},
        "Public https URL where the Veo API can reach this Airflow's callback receiver, e.g. "
        "https://airflow.example.com/veo (http only on a loopback host). Empty: poll.",
    ),
    "callback_secret": Extra(
        None,
        "Callback signing secret",
        _SECRET,
        "HMAC-SHA256 secret that signs callback URLs (32+ characters). Rotate by moving the old value to "
        "'Previous callback secret'.",
    ),
    "callback_secret_previous": Extra(
        None, "Previous callback secret", _SECRET, "Still accepted for callbacks signed before a rotation."
    ),
}


def connection_form() -> dict[str, Any]:
    """The ``conn-fields`` of the provider info (Airflow 3.2+ connection form)."""
    return {name: extra.form() for name, extra in EXTRAS.items()}


def callback_secrets(extra: dict[str, Any]) -> list[str]:
    """The callback secrets of a connection's extras, current first (empty: callbacks are off)."""
    values = (extra.get("callback_secret"), extra.get("callback_secret_previous"))
    return [v for v in values if isinstance(v, str) and v]


def _refuse(message: str) -> Exception:
    """A configuration error: final (a retry reads the same connection), and still a ValueError."""
    from veo_provider.exceptions import VeoConfigError

    return VeoConfigError(message)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss of a known name, else empty."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: Extras read besides the form's: the token, when a connection made elsewhere has no password.
_OTHER_EXTRAS = ("token",)


def _check_extra_names(conn_id: str | None, extra: dict[str, Any]) -> None:
    """An unknown extra is refused: a typo (``daily_job_limt``) would silently switch a setting off."""
    known = (*EXTRAS, *_OTHER_EXTRAS)
    if unknown := [name for name in extra if name not in known]:
        named = ", ".join(f"{name!r}{did_you_mean(name, known)}" for name in unknown)
        raise _refuse(
            f"The Veo connection {conn_id!r} has unknown extra(s) {named}: fix or remove them "
            f"(the extras it reads: {', '.join(known)})"
        )


def _token(conn_id: str | None, conn: Connection, extra: dict[str, Any]) -> str:
    """The token, refused (never echoed) when it cannot travel in an HTTP header as it is."""
    token = str(conn.password or extra.get("token") or "").strip()
    for position, char in enumerate(token, 1):
        if not "!" <= char <= "~":  # visible ASCII only: a newline would end the header early
            what = "a space" if char == " " else "a non-ASCII character" if ord(char) > 127 else "a control character"
            raise _refuse(
                f"The API token of the Veo connection {conn_id!r} has {what} (character {position}): "
                "paste the token again as one line, without spaces or line breaks"
            )
    return token


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: plain http stays on this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ipv6_literal(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _base_url(conn: Connection) -> str:
    """The API base URL from the connection's host (and port), parsed by httpx, not by hand.

    Without a scheme a loopback host gets http (emulator, local proxy), any other https.
    """
    raw = (conn.host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    where = f"The host (Base URL) of the Veo connection {getattr(conn, 'conn_id', None)!r}"
    if "@" in raw:  # checked on the raw text: a password may hold characters that break parsing
        raise _refuse(
            f"{where} must not contain a user name or password (user:password@host): "
            "put the token in the password field"
        )
    if _is_ipv6_literal(raw):
        raw = f"[{raw}]"
    has_scheme = bool(_SCHEME.match(raw))
    import httpx

    try:
        url = httpx.URL(raw if has_scheme else "//" + raw)
    except httpx.InvalidURL:
        url = None
    if url is None or not url.host or (has_scheme and url.scheme not in ("http", "https")):
        shown = raw.split("?")[0].split("#")[0]  # a query might hold a key: never echoed
        raise _refuse(f"{where} must be an http(s) URL such as {DEFAULT_BASE_URL} (got {shown!r})")
    if url.query or url.fragment:
        raise _refuse(f"{where} must be a base URL without query or fragment, such as {DEFAULT_BASE_URL}")
    if not has_scheme:
        url = url.copy_with(scheme="http" if _is_loopback(url.host) else "https")
    elif url.scheme == "http" and not _is_loopback(url.host):
        raise _refuse(
            f"{where} must be https:// (the token travels in every request's Authorization header): "
            f"use https://{url.netloc.decode('ascii')}; plain http only for a loopback host such as the "
            "emulator on 127.0.0.1"
        )
    if conn.port and url.port is None:
        url = url.copy_with(port=int(conn.port))
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.raw_path.decode('ascii').rstrip('/')}"


def _callback_base_url(extra: dict[str, Any]) -> str | None:
    """The public callback base: https, so the signed callback URLs travel encrypted (loopback may be http)."""
    raw = str(extra.get("callback_base_url") or "").strip().rstrip("/")
    if not raw:
        return None
    import httpx

    try:
        url: httpx.URL | None = httpx.URL(raw)
    except httpx.InvalidURL:
        url = None
    if url is not None and url.host and (url.scheme == "https" or (url.scheme == "http" and _is_loopback(url.host))):
        return raw
    shown = f" (got {raw!r})" if "@" not in raw else ""  # the URL is no secret, user info would be
    raise _refuse(
        f"Veo connection extra 'callback_base_url' must be an https:// URL{shown}: use https://… "
        "(a public TLS endpoint of the api-server), or a loopback http URL for local testing"
    )


def _number(extra: dict[str, Any], key: str, unit: str = "seconds") -> float:
    value = extra.get(key)
    if value in (None, ""):
        return float(_default(key))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _refuse(f"Veo connection extra {key!r} must be a number of {unit} (got {value!r})") from None
    if number <= 0:
        raise _refuse(f"Veo connection extra {key!r} must be positive (got {value!r})")
    return number


def _limit(extra: dict[str, Any], key: str) -> int | None:
    """A whole number >= 1, or None when not set (no cap)."""
    value = extra.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or number < 1:
        raise _refuse(
            f"Veo connection extra {key!r} must be a whole number of jobs, at least 1 (got {value!r}); "
            "leave it empty for no cap"
        )
    return number


def _default(name: str) -> Any:
    return EXTRAS[name].default


@dataclass(frozen=True)
class VeoSettings:
    """What the hook needs from the connection; secrets are excluded from repr and equality."""

    base_url: str = DEFAULT_BASE_URL
    token: str = field(default="", repr=False, compare=False)
    timeout: float = float(_default("timeout"))
    connect_timeout: float = float(_default("connect_timeout"))
    submit_timeout: float = float(_default("submit_timeout"))
    max_retries: int = int(_default("max_retries"))
    max_download_mb: float = float(_default("max_download_mb"))
    get1080p_action: str = _default("get1080p_action")
    daily_job_limit: int | None = None
    callback_base_url: str | None = None
    callback_secret: str | None = field(default=None, repr=False, compare=False)
    callback_secret_previous: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_connection(cls, conn: Connection, extra: dict[str, Any]) -> VeoSettings:
        conn_id = getattr(conn, "conn_id", None)
        _check_extra_names(conn_id, extra)
        return cls(
            base_url=_base_url(conn),
            token=_token(conn_id, conn, extra),
            timeout=_number(extra, "timeout"),
            connect_timeout=_number(extra, "connect_timeout"),
            submit_timeout=_number(extra, "submit_timeout"),
            max_retries=max(1, int(_number(extra, "max_retries"))),
            max_download_mb=_number(extra, "max_download_mb", unit="MB"),
            get1080p_action=extra.get("get1080p_action") or _default("get1080p_action"),
            daily_job_limit=_limit(extra, "daily_job_limit"),
            callback_base_url=_callback_base_url(extra),
            callback_secret=extra.get("callback_secret") or None,
            callback_secret_previous=extra.get("callback_secret_previous") or None,
        )

    def headers(self, conn_id: str) -> dict[str, str]:
        if not self.token:
            from veo_provider.exceptions import VeoAuthError

            raise VeoAuthError(
                f"The Veo connection {conn_id!r} has no API token: put the AceData Cloud token in its password"
            )
        return {
            "accept": "application/json",
            "authorization": f"Bearer {self.token}",
            "content-type": "application/json",
        }


async def read_extra_async(conn: Connection) -> dict[str, Any]:
    """The connection's extras without a sync supervisor call on the event loop.

    common-compat >= 1.23 (Python 3.11+) has a helper; on Python 3.10 the newest common-compat
    is 1.20, so fall back to what Airflow 3.3.2 offers itself.
    """
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:
        if hasattr(conn, "aextra_dejson"):
            return await conn.aextra_dejson()
        from asgiref.sync import sync_to_async

        return await sync_to_async(lambda: conn.extra_dejson)()
    return await get_async_extra_dejson(conn)


def _not_found(conn_id: str, reader: str) -> Exception:
    from veo_provider.exceptions import VeoConnectionNotFound

    env = "AIRFLOW_CONN_" + conn_id.upper()
    return VeoConnectionNotFound(
        f"The Veo connection {conn_id!r} is not defined where {reader} reads connections: the environment "
        f"variable {env} of that process, the secrets backends configured there, then the metadata database. "
        f"Add it with `airflow connections add {conn_id} --conn-type veo --conn-password <token>` (metadata "
        f"database), or set {env} on every worker and triggerer"
    )


def read_settings(hook: BaseHook, conn_id: str, reader: str = "this task") -> VeoSettings:
    """The connection's settings, read the way a task reads connections (through ``hook``)."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        conn = hook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise _not_found(conn_id, reader) from None
    return VeoSettings.from_connection(conn, conn.extra_dejson)


def _comms_answer_only_sync() -> bool:
    """True under ``airflow dags test``: its in-process supervisor answers only synchronous requests.

    There the asynchronous lookup skips the metadata database (it finds only ``AIRFLOW_CONN_*``
    variables), so a connection made by ``airflow connections add`` would be missing for the wait.
    """
    from veo_provider.compat import supervisor_comms

    comms = supervisor_comms()
    return comms is not None and not hasattr(comms, "asend")


async def aread_settings(hook: BaseHook, conn_id: str) -> VeoSettings:
    """The connection's settings without blocking the event loop, from the same sources as the task."""
    if _comms_answer_only_sync():  # the task's own (sync) lookup, in a thread: the same connection
        from asgiref.sync import sync_to_async

        return await sync_to_async(read_settings)(hook, conn_id, "the wait")
    from airflow.providers.common.compat.connection import get_async_connection
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        conn = await get_async_connection(conn_id, hook=hook)
    except AirflowNotFoundException:
        raise _not_found(conn_id, "the wait") from None
    return VeoSettings.from_connection(conn, await read_extra_async(conn))
