"""The one address policy for every URL we fetch or ask the vendor to fetch.

Used for ``image_urls`` and ``image_mask`` (the vendor fetches them: a private host cannot work
and tells a stranger our internal names), for ``video_url`` downloads and for every redirect hop
(we fetch those: a private host would make the worker a proxy into its own network).

Hosts are compared only after normalisation, the way resolvers and browsers read them: UTS 46 /
IDNA mapping (full-width letters and dots such as ``127。0。0。1``), a trailing dot, the
``inet_aton`` spellings of IPv4 (``127.1``, ``0177.0.0.1``, ``0x7f.1``, ``2130706433``) and IPv4
embedded in IPv6 (mapped, compatible, translated, NAT64, 6to4, Teredo). The string checks here do
no network I/O (they run when a request is validated, even at DAG-parse time); ``resolve`` is the
one DNS lookup, called by the hook just before it connects (or submits).

Lives beside ``settings.py`` rather than in ``hooks/``: the request models use it too, and the
models may not import the hooks. Standard library and ``idna`` only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

__all__ = [
    "AddressRefused",
    "check_addresses",
    "check_resolved_url",
    "check_url",
    "is_private_host",
    "normalise_host",
    "parse_ip",
    "refusal",
    "resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Suffixes that never name a public host (RFC 6761, RFC 8375, common private zones).
PRIVATE_SUFFIXES = (".localhost", ".internal", ".local", ".lan", ".home.arpa", ".localdomain", ".intranet", ".corp")
#: Names every resolver answers with a loopback address, or cloud metadata names.
PRIVATE_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
#: ``::ffff:0:a.b.c.d`` (RFC 2765 IPv4-translated), which Python's ``ipv4_mapped`` does not read.
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
#: What ``inet_aton`` accepts: one to four numbers, each decimal, octal (0...) or hex (0x...).
_INET_ATON = re.compile(r"(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
#: A label spelling an IPv4 address with dashes, as wildcard DNS services read it (``10-0-0-1.sslip.io``).
_DASHED = re.compile(r"(?:.*-)?(\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3})")


class AddressRefused(ValueError):
    """A URL or host the policy refuses; the message names the field and the fix."""


def normalise_host(host: str) -> str:
    """The host as a resolver reads it: IDNA/UTS 46 mapped, lowercase, no brackets or trailing dot.

    Raises ``ValueError`` for a host that is no valid name or address.
    """
    import idna

    raw = host.strip().strip("[]") if host.startswith("[") else host.strip()
    if not raw:
        raise ValueError("no host")
    if ":" in raw:  # an IPv6 literal: nothing to map
        return str(ipaddress.IPv6Address(raw.split("%")[0]))
    try:
        mapped = idna.uts46_remap(raw, std3_rules=False, transitional=False).rstrip(".")
        # Plain ASCII names are taken as they are (IDNA 2008 would refuse the ``_`` some CDNs use).
        ascii_host = mapped.lower() if mapped.isascii() else idna.encode(mapped).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"not a valid host name ({exc})") from None
    if not ascii_host or not all(_LABEL.fullmatch(label) for label in ascii_host.split(".")):
        raise ValueError("not a valid host name")
    return ascii_host


def parse_ip(host: str) -> IPAddress | None:
    """The address a normalised host names, in any spelling ``inet_aton`` accepts; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # e.g. a part over 255: no address, and not a name a resolver answers either
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server is a public relay)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in (*_NAT64, _TRANSLATED)):
        return low32
    if address in _COMPATIBLE and int(address) > 1:  # ::a.b.c.d (deprecated IPv4-compatible)
        return low32
    return None


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "private"
    return "reserved"


_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: not global, not is_private on 3.11


def address_refusal(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``address`` may not be used (None: it may); private and loopback pass with ``allow_private``."""
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None:
        why = address_refusal(inner, allow_private=allow_private)
        return f"{why}, embedded in the IPv6 address {address}" if why else None
    if address.is_global and not address.is_multicast:
        return None
    kind = _kind(address)
    if allow_private and kind in ("loopback", "private"):
        return None
    return f"the {kind} address {address}"


def _embedded_address(host: str) -> IPAddress | None:
    """A non-global IPv4 address spelled in a name's labels: wildcard DNS (``127.0.0.1.nip.io``,
    ``10-0-0-1.sslip.io``) answers exactly that address for such names."""
    labels = host.split(".")
    for i in range(len(labels) - 3):
        dotted = parse_ip(".".join(labels[i : i + 4]))
        if dotted is not None and all(label.isdigit() for label in labels[i : i + 4]):
            return dotted
    for label in labels:
        if match := _DASHED.fullmatch(label):
            try:
                return ipaddress.IPv4Address(match.group(1).replace("-", "."))
            except ValueError:
                continue
    return None


def refusal(host: str, *, allow_private: bool = False) -> str | None:
    """Why a normalised host may not be used, from its text alone (None: it may, pending DNS)."""
    address = parse_ip(host)
    if address is not None:
        return address_refusal(address, allow_private=allow_private)
    if _INET_ATON.fullmatch(host):
        return f"the malformed address {host!r}"
    embedded = _embedded_address(host)
    if embedded is not None and (why := address_refusal(embedded, allow_private=allow_private)):
        return f"the name {host!r}, which spells {why} (wildcard DNS answers it)"
    if allow_private:
        return None
    if host in PRIVATE_NAMES or host.endswith(PRIVATE_SUFFIXES):
        return f"the private name {host!r}"
    if "." not in host:
        return f"the single-label name {host!r} (only a local resolver answers it, e.g. 'metadata')"
    return None


def check_url(field: str, url: str, *, allow_private: bool = False, fix: str) -> str:
    """``url`` when it is an http(s) URL whose host the policy accepts; AddressRefused names ``field``.

    Pure: no DNS (the hook resolves, see ``check_addresses``). ``fix`` ends every message.
    """
    what = f"{field} must be a public http(s) URL"
    if not re.match(r"^https?://[^\s/]", url, re.IGNORECASE):
        shown = url.split("?")[0][:80]  # a signed URL's query holds its credentials
        raise AddressRefused(f"{field} must be an http(s) URL (got {shown!r}): {fix}")
    if re.search(r"[\s\x00-\x1f\x7f\\]", url):
        raise AddressRefused(f"{what} (it contains whitespace, a control character or a backslash): {fix}")
    netloc = urlsplit(url).netloc
    if "@" in netloc:
        raise AddressRefused(f"{what} (it carries a user name or password): use a URL without credentials")
    try:
        urlsplit(url).port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        raise AddressRefused(f"{what} (its port in {netloc[:80]!r} is not a number from 0 to 65535): {fix}") from None
    try:
        host = normalise_host(urlsplit(url).hostname or "")
    except ValueError as exc:
        raise AddressRefused(f"{what} (its host {netloc[:80]!r} is {exc}): {fix}") from None
    why = refusal(host, allow_private=allow_private)
    if why is not None:
        raise AddressRefused(f"{what} (its host {netloc[:80]!r} is {why}): {fix}")
    return url


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address a normalised host resolves to (one lookup); an IP literal is itself."""
    address = parse_ip(host)
    if address is not None:
        return [address]
    infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    found: dict[str, IPAddress] = {}
    for *_, sockaddr in infos:
        found.setdefault(str(sockaddr[0]), ipaddress.ip_address(str(sockaddr[0]).split("%")[0]))
    return list(found.values())


def check_addresses(what: str, host: str, addresses: list[IPAddress], *, allow_private: bool, fix: str) -> None:
    """Refuse a host when any address it resolved to is refused (a name is as private as its worst answer)."""
    for address in addresses:
        why = address_refusal(address, allow_private=allow_private)
        if why is not None:
            raise AddressRefused(f"{what} (its host {host!r} resolves to {why}): {fix}")


def check_resolved_url(field: str, url: str, *, fix: str) -> None:
    """Refuse a URL (already accepted by ``check_url``) whose host resolves to a non-global address.

    A host that does not resolve here passes: this is for URLs the vendor fetches from the
    internet, and a worker may see no public DNS at all.
    """
    try:
        host = normalise_host(urlsplit(url).hostname or "")
        found = resolve(host, urlsplit(url).port)
    except (OSError, ValueError, UnicodeError):
        return
    check_addresses(f"{field} must be a public http(s) URL", host, found, allow_private=False, fix=fix)


def is_private_host(host: str) -> bool:
    """Whether a host (e.g. the Veo API's) is loopback or private: by its text, else by DNS.

    A name that does not resolve counts as public (the stricter answer for downloads).
    """
    try:
        host = normalise_host(host)
    except ValueError:
        return False
    if refusal(host) is None:
        try:
            addresses = resolve(host)
        except OSError:
            return False
        return bool(addresses) and all(address_refusal(a) is not None for a in addresses)
    return refusal(host, allow_private=True) is None
