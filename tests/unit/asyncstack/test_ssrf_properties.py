"""Properties of the SSRF checks (asyncstack/runtime/ssrf.py): the address classification agrees with an oracle
built from Python's ``ipaddress`` properties, and any URL string is accepted or refused with
``UnsafeCallbackUrlError``, never another exception. Pure functions: nothing is resolved or connected."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls

from asyncstack.runtime.ssrf import UnsafeCallbackUrlError, _blocked_reason, check_callback_url

pytestmark = pytest.mark.unit

PURE = settings(max_examples=300, deadline=None)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Refused although Python 3.11's tables call parts of them global: the whole IETF protocol block
# (its PCP and TURN anycast addresses, 192.0.0.9 and .10, are global per IANA, but no webhook lives
# there) and the deprecated 6to4 relay anycast block (RFC 7526). Stricter than the oracle by choice.
REFUSED_BY_POLICY = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("192.88.99.0/24"))


def not_public(ip: IPAddress) -> bool:
    """The oracle: what Python's ``ipaddress`` says about ``ip``, following IPv6 forms to the IPv4 address they
    carry (mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96); Teredo is never called."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (
            ip.ipv4_mapped
            or ip.sixtofour
            or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        )
        if embedded is not None:
            return not_public(embedded)
        if ip.teredo is not None or ip.is_site_local:
            return True
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified or not ip.is_global or ip in METADATA
        or any(ip in network for network in REFUSED_BY_POLICY if network.version == ip.version)
    )  # fmt: skip


def plain_loopback(ip: IPAddress) -> bool:
    return any(ip.version == network.version and ip in network for network in LOOPBACK)


addresses = (
    st.ip_addresses()
    | st.ip_addresses(network="2002::/16")  # 6to4: the IPv4 address is in bits 16-48
    | st.ip_addresses(network="64:ff9b::/96")  # NAT64: in the last 32 bits
    | st.ip_addresses(network="::ffff:0:0/96")  # IPv4-mapped
    | st.ip_addresses(network="2001::/32")  # Teredo
    | st.sampled_from(sorted(METADATA, key=str))
)


@PURE
@given(ip=addresses, allow_loopback=st.booleans())
@example(
    ip=ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True
)  # loopback never through a translation
@example(ip=ipaddress.ip_address("64:ff9b::a9fe:a9fe"), allow_loopback=False)  # NAT64 of the metadata address
@example(ip=ipaddress.ip_address("2002:0a00:0001::"), allow_loopback=False)  # 6to4 of 10.0.0.1
def test_an_address_is_refused_exactly_when_the_oracle_says_it_is_not_public(
    ip: IPAddress, allow_loopback: bool
) -> None:
    # Given any IPv4 or IPv6 address (with or without the local cloud's loopback exception)
    # When it is classified
    reason = _blocked_reason(ip, allow_loopback=allow_loopback)
    # Then it is refused, with a reason, exactly when ipaddress says it is not a public unicast address;
    # loopback is let through only when allowed, and only as itself (never mapped or translated)
    expected = not_public(ip) and not (allow_loopback and plain_loopback(ip) and ip not in METADATA)
    assert (reason is not None) == expected, reason
    assert reason is None or reason.strip()


# -- URLs --------------------------------------------------------------------------------------------------


def _host(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


url_texts = (
    st.text()
    | urls()
    | st.builds(
        "{}://{}{}{}{}".format,
        st.sampled_from(["https", "http", "HTTPS", "ftp", "", "javascript"]),
        st.sampled_from(["", "user:pw@", "@"]),
        domains() | addresses.map(_host) | st.text(max_size=12) | st.sampled_from(["[::1", "[v1.x]", "0x7f.1", "localhost"]),
        st.sampled_from(["", ":443", ":8443", ":22", ":0", ":99999", ":x"]),
        st.text(max_size=20),
    )
)  # fmt: skip


@PURE
@given(url=url_texts, allow_insecure=st.booleans())
@example(url="https://[::1", allow_insecure=False)  # urlsplit: ValueError("Invalid IPv6 URL")
@example(url="https://[example.com]/", allow_insecure=False)  # urlsplit: not an IP address in brackets
@example(url="https://\u2100.com/", allow_insecure=False)  # urlsplit: netloc changed by NFKC
@example(url="https://example.com/?q=\ud800", allow_insecure=False)  # quote(): a lone surrogate
def test_any_url_is_accepted_or_refused_with_the_typed_error(url: str, allow_insecure: bool) -> None:
    # Given any string as a callback URL
    # When it is checked
    try:
        checked = check_callback_url(url, allow_insecure=allow_insecure)
    except UnsafeCallbackUrlError as error:
        assert str(error)
        return  # Then it is refused with UnsafeCallbackUrlError ...
    # ... or accepted as an ASCII-path URL of an allowed scheme, with no credentials, which checks the same again
    parts = urlsplit(checked)
    assert parts.scheme.lower() in (("https", "http") if allow_insecure else ("https",))
    assert "@" not in parts.netloc and parts.hostname
    assert (parts.path + parts.query + parts.fragment).isascii()
    assert check_callback_url(checked, allow_insecure=allow_insecure) == checked


@PURE
@given(ip=addresses)
def test_an_ip_literal_url_is_accepted_exactly_when_its_address_is_public(ip: IPAddress) -> None:
    # Given an https URL whose host is an IP literal
    url = f"https://{_host(ip)}/hook"
    # When it is checked (without the local cloud's exception)
    try:
        check_callback_url(url)
        accepted = True
    except UnsafeCallbackUrlError:
        accepted = False
    # Then it is accepted exactly when the oracle says the address is public
    assert accepted == (not not_public(ip))


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1",
        "https://[example.com]/",
        "https://[v1.x]/",
        "https://\u2100.com/",
        "https://example.com/?q=\ud800",
    ],
)
def test_urls_python_cannot_split_or_encode_are_refused(url: str) -> None:
    # Given a URL urlsplit() or quote() raises on (found by the property above: a bare ValueError or
    # UnicodeEncodeError, which webhook delivery treated as a network failure and retried)
    # When it is checked
    # Then it is refused with the typed error
    with pytest.raises(UnsafeCallbackUrlError):
        check_callback_url(url)
