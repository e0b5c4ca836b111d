"""The address policy: every spelling of a non-global host is refused, public hosts pass, DNS is checked."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veo_provider import addresses
from veo_provider.addresses import AddressRefused, check_resolved_url, check_url, is_private_host

FIX = "the fix"

#: Spellings of loopback, private and metadata hosts that resolvers and fetchers accept.
BYPASSES = [
    "http://0177.0.0.1/x.png",  # octal
    "http://127.1/x.png",  # short form
    "http://0x7f.1/x.png",  # hex short form
    "http://017700000001/x.png",  # one octal number
    "http://2130706433/x.png",  # one decimal number
    "http://0x7f000001/x.png",  # one hex number
    "http://0x7F.0.0.1/x.png",
    "http://127\u30020\u30020\u30021/x.png",  # ideographic full stops
    "http://127\uff0e0\uff0e0\uff0e1/x.png",  # full-width full stops
    "http://\uff11\uff12\uff17.0.0.1/x.png",  # full-width digits
    "http://[::127.0.0.1]/x.png",  # IPv4-compatible
    "http://[::ffff:127.0.0.1]/x.png",  # IPv4-mapped
    "http://[::ffff:0:7f00:1]/x.png",  # IPv4-translated
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/x.png",  # local-use NAT64 of 10.0.0.1
    "http://[2002:a9fe:a9fe::]/latest/meta-data/",  # 6to4 of 169.254.169.254
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.png",  # Teredo whose client is 127.0.0.1
    "http://[fe80::1%25eth0]/x.png",
    "http://metadata/computeMetadata/v1/",
    "http://instance-data/latest/",
    "http://METADATA./x.png",
    "http://\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41/x.png",  # full-width 'metadata'
    "http://localhost.localdomain/x.png",
    "http://localhost./x.png",
    "http://127.0.0.1.nip.io/x.png",
    "http://app.10.0.0.1.nip.io/x.png",
    "http://169-254-169-254.sslip.io/latest/",
    "http://web-192-168-0-1.sslip.io/x.png",
    "http://%31%32%37.0.0.1/x.png",  # percent-encoded host
    "http://256.0.0.1/x.png",  # no address, no name either
    "http://0.0.0.0/x.png",
    "http://[::]/x.png",
    "http://100.64.0.1/x.png",  # carrier-grade NAT
    "http://224.0.0.1/x.png",
]


@pytest.mark.parametrize("url", BYPASSES)
def test_every_spelling_of_a_non_global_host_is_refused_naming_the_field(url: str) -> None:
    with pytest.raises(AddressRefused, match=r"^image_urls\[0\] must be a public http\(s\) URL .*: the fix$"):
        check_url("image_urls[0]", url, fix=FIX)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("3232235521", "192.168.0.1"),
    ],
)
def test_inet_aton_spellings_are_read_as_the_address_a_resolver_connects_to(host: str, address: str) -> None:
    assert addresses.parse_ip(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("v6", "v4"),
    [
        ("::127.0.0.1", "127.0.0.1"),
        ("::ffff:0:7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
    ],
)
def test_ipv4_embedded_in_ipv6_is_found(v6: str, v4: str) -> None:
    assert addresses.embedded_ipv4(ipaddress.IPv6Address(v6)) == ipaddress.IPv4Address(v4)


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example/a.png",
        "https://storage.googleapis.com/bucket/a.png?X-Goog-Signature=abc",
        "https://b\u00fccher.example/a.png",  # an IDN
        "https://my_bucket.s3.amazonaws.com/a.png",  # underscores some buckets use
        "http://93.184.216.34/a.png",
        "http://[2606:4700::1111]/a.png",
        "https://img-1-2-3-4.cdn.example/a.png",  # spells a public address: harmless
        "https://CDN.Example.:8443/a.png",
    ],
)
def test_public_urls_pass(url: str) -> None:
    assert check_url("image_urls[0]", url, fix=FIX) == url


def test_loopback_and_private_pass_only_when_allowed_and_metadata_never() -> None:
    for url in ("http://127.0.0.1:8089/v.mp4", "http://10.2.3.4/v.mp4", "http://[fd00::1]/v.mp4", "http://veo-gw/v"):
        with pytest.raises(AddressRefused):
            check_url("video_url", url, fix=FIX)
        assert check_url("video_url", url, allow_private=True, fix=FIX) == url
    for url in ("http://169.254.169.254/latest/", "http://[64:ff9b::a9fe:a9fe]/", "http://0.0.0.0/", "http://[::]/"):
        with pytest.raises(AddressRefused, match=r"link-local|unspecified"):
            check_url("video_url", url, allow_private=True, fix=FIX)


@pytest.mark.parametrize(
    "url",
    ["ftp://cdn.example/a", "file:///etc/passwd", "https://user:pw@cdn.example/a", "https://cdn.example\\@x/a"],
)
def test_non_http_and_credentialed_urls_are_refused(url: str) -> None:
    with pytest.raises(AddressRefused, match="image_mask"):
        check_url("image_mask", url, fix=FIX)


# ------------------------------------------------------------------------------ DNS


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer ``getaddrinfo`` from ``answers`` (unknown names fail like NXDOMAIN); returns the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        if addresses.parse_ip(host) is not None:  # socket.create_connection looks up addresses too
            return real(host, port, *args, **kwargs)
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["10.0.0.7"], ["169.254.169.254"], ["93.184.216.34", "192.168.1.1"], ["::ffff:127.0.0.1"]],
    ids=["loopback", "private", "metadata", "public-and-private", "mapped"],
)
def test_a_name_resolving_to_any_non_global_address_is_refused(monkeypatch: pytest.MonkeyPatch, answer) -> None:
    fake_dns(monkeypatch, {"images.example.com": answer})
    with pytest.raises(AddressRefused, match=r"image_urls\[1\] .*resolves to"):
        check_resolved_url("image_urls[1]", "https://images.example.com/a.png", fix=FIX)


def test_a_name_resolving_to_public_addresses_or_not_at_all_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_dns(monkeypatch, {"images.example.com": ["93.184.216.34", "2606:4700::1111"]})
    check_resolved_url("image_urls[0]", "https://images.example.com/a.png", fix=FIX)
    check_resolved_url("image_urls[0]", "https://unresolvable.example/a.png", fix=FIX)  # the vendor resolves it
    assert asked == ["images.example.com", "unresolvable.example"]


def test_the_api_host_is_private_by_its_text_or_by_every_dns_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"gw.example.com": ["10.0.0.2"], "mixed.example.com": ["10.0.0.2", "93.184.216.34"]})
    assert is_private_host("127.0.0.1") and is_private_host("localhost") and is_private_host("10.9.8.7")
    assert is_private_host("veo-gateway") and is_private_host("gw.example.com")
    assert not is_private_host("api.acedata.cloud"), "a name that does not resolve counts as public"
    assert not is_private_host("mixed.example.com") and not is_private_host("169.254.169.254")


# ------------------------------------------------------------------------------ sweep


def spellings(address: ipaddress.IPv4Address) -> st.SearchStrategy[str]:
    """The ways a fetcher may be handed ``address`` as a URL host."""
    n, parts = int(address), address.packed
    return st.sampled_from(
        [
            str(n),
            hex(n),
            "0" + oct(n)[2:],
            ".".join("0" + oct(p)[2:] for p in parts),
            ".".join(hex(p) for p in parts),
            f"{parts[0]}.{int.from_bytes(parts[1:], 'big')}",
            f"{parts[0]}.{parts[1]}.{int.from_bytes(parts[2:], 'big')}",
            str(address).replace(".", "\u3002"),
            str(address).replace(".", "\uff0e"),
            f"[::{address}]",
            f"[::ffff:{address}]",
            f"[::ffff:0:{address}]",
            f"[64:ff9b::{address}]",
            f"[2002:{parts[0]:02x}{parts[1]:02x}:{parts[2]:02x}{parts[3]:02x}::1]",
            f"{address}.nip.io",
            f"{str(address).replace('.', '-')}.sslip.io",
        ]
    )


NON_GLOBAL = st.sampled_from(
    ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
).flatmap(
    lambda net: st.integers(0, ipaddress.IPv4Network(net).num_addresses - 1).map(
        lambda i: ipaddress.IPv4Network(net)[i]
    )
)


@settings(max_examples=300, deadline=None, database=None)
@given(host=NON_GLOBAL.flatmap(spellings))
def test_no_spelling_of_a_non_global_ipv4_address_passes(host: str) -> None:
    with pytest.raises(AddressRefused, match="image_urls"):
        check_url("image_urls[0]", f"http://{host}/a.png", fix=FIX)
