"""Callback URLs are chosen by callers, so calling them must not reach anything of ours (SSRF).

Two checks: ``check_callback_url`` when the URL is given (syntax, scheme, credentials, port, IP
literals), and ``resolve_safe`` when it is called: every address the name resolves to must be
public. ``post`` then connects to the checked address itself, never resolving again, so a DNS
answer that changes between check and connect (DNS rebinding) cannot redirect the request; TLS
still verifies the certificate against the URL's host name. Redirects are never followed.

Only the local cloud sets ``WEBHOOK_ALLOW_INSECURE=true``: plain http and loopback addresses (its
receivers listen on 127.0.0.1). Nothing else private is ever allowed.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from pydantic import Field, field_validator

from asyncstack import contract
from asyncstack.runtime.settings import EnvironmentSettings, load

__all__ = [
    "ALLOW_INSECURE_VARIABLE",
    "MAX_REQUEST_SECONDS",
    "CallbackSettings",
    "DeliveryError",
    "IPAddress",
    "Response",
    "UnsafeCallbackUrlError",
    "check_callback_url",
    "insecure_allowed",
    "post",
    "resolve_safe",
]

ALLOW_INSECURE_VARIABLE = contract.WEBHOOK_ALLOW_INSECURE
MAX_URL_LENGTH = 2048
MAX_ADDRESSES_TRIED = 3  # of a host's addresses, so a dead host cannot hold a worker for long
DNS_TIMEOUT = 2.0
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
# The longest one ``post`` can take with the default timeouts: what a worker must budget per request.
MAX_REQUEST_SECONDS = DNS_TIMEOUT + MAX_ADDRESSES_TRIED * CONNECT_TIMEOUT + READ_TIMEOUT
# Characters left as they are when a URL's path and query are percent-encoded (RFC 3986 reserved ones).
_URL_SAFE = "/?#[]@!$&'()*+,;=:%~"
USER_AGENT = "asyncstack-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Explicit, on top of the ipaddress properties (whose tables differ between Python versions).
_BLOCKED: tuple[tuple[_Network, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Hosts a resolver may read as an IPv4 address although they are not dotted quads (2130706433, 0x7f.1).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_ALLOWED_PORTS = frozenset({80, 443})
_MIN_UNPRIVILEGED_PORT = 1024


class UnsafeCallbackUrlError(ValueError):
    """The callback URL may not be called: the message says why. A ``ValueError`` so APIs answer 400."""


class DeliveryError(Exception):
    """The request did not get an HTTP answer (timeout, refused, TLS, DNS): worth retrying later."""


@dataclass(frozen=True)
class Response:
    """The HTTP answer: its status and at most ``max_response_bytes`` of its body."""

    status: int
    body_prefix: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class CallbackSettings(EnvironmentSettings):
    """Whether callbacks may be plain HTTP to loopback: only a local cloud sets ``WEBHOOK_ALLOW_INSECURE``
    to "true" (its receivers listen on 127.0.0.1); any other value, or none, means no."""

    allow_insecure: bool = Field(default=False, validation_alias=ALLOW_INSECURE_VARIABLE)

    @field_validator("allow_insecure", mode="before")
    @classmethod
    def _only_true(cls, value: object) -> object:
        return value.strip().lower() == "true" if isinstance(value, str) else value


def insecure_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """The one place ``WEBHOOK_ALLOW_INSECURE`` is read (once per cold start, unless ``environ`` is given)."""
    settings = load(CallbackSettings) if environ is None else CallbackSettings.from_environment(environ)
    return settings.allow_insecure


# -- the URL -----------------------------------------------------------------------------------


def _ascii_host(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UnsafeCallbackUrlError(f"callback URL host {host!r} is not a valid host name") from exc


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_text(url: object) -> str:
    if not isinstance(url, str) or not url:
        raise UnsafeCallbackUrlError("callback URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeCallbackUrlError(f"callback URL must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeCallbackUrlError("callback URL must not contain spaces or control characters")
    if not url.isascii():
        try:
            url.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: it cannot be percent-encoded or sent
            raise UnsafeCallbackUrlError("callback URL must be valid Unicode text") from exc
    return url


def _split(url: str) -> SplitResult:
    """``urlsplit``, whose ValueErrors (unbalanced or non-IP brackets, a host changed by NFKC) are refusals."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeCallbackUrlError(f"callback URL cannot be parsed: {exc}") from exc
    host = parts.hostname
    if "[" in parts.netloc and (
        host is None or not isinstance(_literal_ip(host.split("%", 1)[0]), ipaddress.IPv6Address)
    ):
        raise UnsafeCallbackUrlError("callback URL host in brackets must be an IPv6 address")
    return parts


def _check_host(host: str, *, allow_insecure: bool) -> None:
    ip = _literal_ip(host.split("%", 1)[0])
    if ip is not None:
        reason = _blocked_reason(ip, allow_loopback=allow_insecure)
        if reason:
            raise UnsafeCallbackUrlError(f"callback URL host {ip} is not a public address ({reason})")
        return
    name = _ascii_host(host).rstrip(".")
    if not name:
        raise UnsafeCallbackUrlError("callback URL must have a host")
    if _NUMERIC_HOST.match(name):
        raise UnsafeCallbackUrlError(f"callback URL host {host!r} is an ambiguous numeric address")
    if not allow_insecure and (name == "localhost" or name.endswith(".localhost")):
        raise UnsafeCallbackUrlError("callback URL host must not be localhost")


def _percent_encoded(parts: SplitResult) -> str:
    """The URL with its path, query and fragment in ASCII (non-ASCII characters as UTF-8 %XX escapes):
    an HTTP request line carries only ASCII, so such a URL could never be called as given."""
    return urlunsplit((
        parts.scheme, parts.netloc, quote(parts.path, safe=_URL_SAFE), quote(parts.query, safe=_URL_SAFE),
        quote(parts.fragment, safe=_URL_SAFE),
    ))  # fmt: skip


def check_callback_url(url: str, *, allow_insecure: bool = False) -> str:
    """``url`` as it will be called, if it may be given as a callback (the addresses are checked again when
    it is called): non-ASCII characters of its path and query percent-encoded."""
    parts = _split(_check_text(url))
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme.lower() not in schemes:
        raise UnsafeCallbackUrlError(
            f"callback URL must use {' or '.join(schemes)}, not {parts.scheme or 'no scheme'!r}"
        )
    if "@" in parts.netloc:
        raise UnsafeCallbackUrlError("callback URL must not contain credentials (user:password@)")
    if not parts.hostname:
        raise UnsafeCallbackUrlError("callback URL must have a host")
    try:
        port = parts.port
    except ValueError as exc:
        raise UnsafeCallbackUrlError("callback URL has an invalid port") from exc
    if port is not None and port not in _ALLOWED_PORTS and port < _MIN_UNPRIVILEGED_PORT:
        raise UnsafeCallbackUrlError(f"callback URL port must be 80, 443 or 1024-65535, not {port}")
    _check_host(parts.hostname, allow_insecure=allow_insecure)
    encoded = _percent_encoded(parts)
    if len(encoded) > MAX_URL_LENGTH:
        raise UnsafeCallbackUrlError(
            f"callback URL must be at most {MAX_URL_LENGTH} characters once percent-encoded"
        )
    return encoded


# -- the addresses -----------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), which is where it really goes."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def _blocked_reason(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``ip`` must not be called, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner, form = embedded
            reason = _blocked_reason(inner)  # never loopback through a translation
            return f"{form} form of a {reason} address" if reason else None
        if ip.teredo is not None:
            return "Teredo"
    if ip in _METADATA:
        return "cloud metadata"
    if allow_loopback and any(ip in network for network in _LOOPBACK):
        return None
    reasons = [reason for network, reason in _BLOCKED if ip.version == network.version and ip in network]
    reasons += [
        reason
        for flag, reason in (
            (ip.is_loopback, "loopback"),
            (ip.is_private, "private"),
            (ip.is_link_local, "link-local"),
            (ip.is_multicast, "multicast"),
            (ip.is_unspecified, "unspecified"),
            (ip.is_reserved, "reserved"),
            (not ip.is_global, "not globally routable"),
        )
        if flag
    ]
    return reasons[0] if reasons else None


# getaddrinfo has no timeout of its own: lookups run here, and the caller stops waiting after DNS_TIMEOUT.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ssrf-dns")


def resolve_safe(
    host: str, port: int, *, allow_insecure: bool = False, timeout: float = DNS_TIMEOUT
) -> list[IPAddress]:
    """Every address of ``host``, if all are public; ``UnsafeCallbackUrlError`` if any is not.

    All of them, not the first: a name with one public and one private address would otherwise let
    the connection land on the private one."""
    literal = _literal_ip(host.strip("[]").split("%", 1)[0])
    lookup = str(literal) if literal is not None else _ascii_host(host)
    lookup_done = _resolver.submit(
        socket.getaddrinfo, lookup, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    try:
        answers = lookup_done.result(timeout=timeout)
    except FutureTimeoutError as exc:
        raise DeliveryError(f"could not resolve {host}: no answer within {timeout:g} s") from exc
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"could not resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = _blocked_reason(ip, allow_loopback=allow_insecure)
        if reason:
            raise UnsafeCallbackUrlError(
                f"callback host {host} resolves to {ip}, which is not public ({reason})"
            )
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise DeliveryError(f"could not resolve {host}: no addresses")
    return addresses


# -- the request -------------------------------------------------------------------------------


def _connect(ip: IPAddress, port: int, host: str, *, tls: bool, timeout: float) -> socket.socket:
    """A connected socket to ``ip``; with TLS, the certificate is verified against ``host``."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((str(ip), port))
        if tls:
            context = ssl.create_default_context()  # certificate and host name verification on
            return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "connect timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return f"connect failed: {exc.strerror or type(exc).__name__}"
    return f"connect failed: {type(exc).__name__}"


def _host_header(host: str, port: int, default_port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


def _connect_any(
    addresses: list[IPAddress], port: int, host: str, *, tls: bool, timeout: float
) -> socket.socket:
    failure = "no address to connect to"
    for ip in addresses[:MAX_ADDRESSES_TRIED]:
        try:
            return _connect(ip, port, host, tls=tls, timeout=timeout)
        except (OSError, ValueError) as exc:
            failure = _connect_error(exc)
    raise DeliveryError(failure)


def _read_error(exc: BaseException, *, expired: bool, elapsed: float) -> DeliveryError:
    if expired or isinstance(exc, TimeoutError):
        return DeliveryError(f"read timeout after {elapsed:.1f} s")
    if isinstance(exc, http.client.RemoteDisconnected):
        return DeliveryError("connection closed without an answer")
    if isinstance(exc, http.client.HTTPException):
        return DeliveryError(f"invalid HTTP answer: {type(exc).__name__}")
    return DeliveryError(f"network error: {getattr(exc, 'strerror', None) or type(exc).__name__}")


def _exchange(
    sock: socket.socket,
    target: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    host: str,
    port: int,
    read_timeout: float,
    max_response_bytes: int,
) -> Response:
    """Send the request on the connected socket and read the status and a body prefix."""
    # The port is given so http.client does not parse one out of an IPv6 address; it never connects.
    connection = http.client.HTTPConnection(host, port, timeout=read_timeout)
    connection.sock = sock  # connected to the checked address already: http.client never resolves
    sock.settimeout(read_timeout)
    # The socket timeout bounds each read; this bounds the whole answer, so a receiver trickling
    # bytes cannot hold the worker. Shutting the socket down wakes the blocked read.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(read_timeout, expire)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        received = bytearray()
        while len(received) < max_response_bytes:
            chunk = response.read1(max_response_bytes - len(received))
            if not chunk:
                break
            received += chunk
        if expired.is_set():  # the shutdown reads as an early end: the answer was cut off, not complete
            raise TimeoutError("the answer did not arrive within the read timeout")
        return Response(status=response.status, body_prefix=bytes(received))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _read_error(exc, expired=expired.is_set(), elapsed=time.monotonic() - started) from exc
    finally:
        watchdog.cancel()
        connection.close()


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_insecure: bool = False,
    dns_timeout: float = DNS_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    max_response_bytes: int = 64 * 1024,
) -> Response:
    """POST ``body`` to ``url`` without following redirects; any HTTP answer is a ``Response``.

    ``UnsafeCallbackUrlError`` if the URL or any address of its host may not be called, ``DeliveryError``
    if no HTTP answer came: the name resolved within ``dns_timeout``, a connection (and TLS handshake)
    within ``connect_timeout`` per address, then the whole answer up to ``max_response_bytes`` within
    ``read_timeout``. With the defaults that is ``MAX_REQUEST_SECONDS`` at most."""
    parts = urlsplit(check_callback_url(url, allow_insecure=allow_insecure))
    tls = parts.scheme.lower() == "https"
    default_port = 443 if tls else 80
    port = parts.port or default_port
    raw_host = parts.hostname or ""
    literal = _literal_ip(raw_host.split("%", 1)[0])
    host = str(literal) if literal is not None else _ascii_host(raw_host).rstrip(".")
    addresses = resolve_safe(host, port, allow_insecure=allow_insecure, timeout=dns_timeout)
    sock = _connect_any(addresses, port, host, tls=tls, timeout=connect_timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_headers = {
        "User-Agent": USER_AGENT,
        **headers,
        "Host": _host_header(host, port, default_port),
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    return _exchange(
        sock, target, body, request_headers, host=host, port=port,
        read_timeout=read_timeout, max_response_bytes=max_response_bytes,
    )  # fmt: skip
