"""Unit tests for callback URL checks and the safe POST (asyncstack/runtime/ssrf.py). No real network: names resolve
through a patched ``socket.getaddrinfo``, and the servers listen on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from asyncstack.runtime import ssrf
from asyncstack.runtime.ssrf import (
    DeliveryError,
    UnsafeCallbackUrlError,
    check_callback_url,
    insecure_allowed,
    post,
    resolve_safe,
)

pytestmark = pytest.mark.unit

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"
# What the patched resolver answers; a name not here does not resolve.
DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC_V4],
    "dual.example.com": [PUBLIC_V4, PUBLIC_V6],
    "internal.example.com": ["10.1.2.3"],
    "mixed.example.com": [PUBLIC_V4, "10.0.0.7"],
    "metadata.example.com": ["fd00:ec2::254"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "cgnat.example.com": ["100.100.1.1"],
    "localhost": ["127.0.0.1", "::1"],
}


def fake_getaddrinfo(host: str, port: int, *_args: Any, **_kwargs: Any) -> list[tuple[Any, ...]]:
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        addresses = DNS[host]
    return [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
        if ":" in a
        else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
        for a in addresses
    ]


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every test resolves through DNS above; returns the names looked up, in order."""
    lookups: list[str] = []

    def recording(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        return fake_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return lookups


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything gets as far as connecting."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a refused callback must never be connected to")

    monkeypatch.setattr(ssrf, "_connect", refuse)


# -- the table of hostile URLs -----------------------------------------------------------------

HOSTILE = [
    ("http://hooks.example.com/cb", "must use https"),
    ("ftp://hooks.example.com/cb", "must use https"),
    ("hooks.example.com/cb", "must use https"),
    ("https://user:secret@hooks.example.com/cb", "credentials"),
    ("https://@hooks.example.com/cb", "credentials"),
    ("https:///cb", "must have a host"),
    ("https://:443/cb", "must have a host"),
    ("https://hooks.example.com:22/cb", "port"),
    ("https://hooks.example.com:99999/cb", "invalid port"),
    ("https://hooks.example.com/a b", "spaces"),
    ("https://127.0.0.1/cb", "loopback"),
    ("https://127.1.2.3:8443/cb", "loopback"),
    ("https://localhost/cb", "localhost"),
    ("https://api.localhost/cb", "localhost"),
    ("https://10.0.0.1/cb", "private"),
    ("https://172.16.0.1/cb", "private"),
    ("https://172.31.255.254/cb", "private"),
    ("https://192.168.1.1/cb", "private"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    ("https://[::1]/cb", "loopback"),
    ("https://[::ffff:127.0.0.1]/cb", "IPv4-mapped form of a loopback"),
    ("https://[::ffff:a9fe:a9fe]/cb", "IPv4-mapped form of a cloud metadata"),
    ("https://[2002:a00:1::1]/cb", "6to4 form of a private"),
    ("https://[64:ff9b::7f00:1]/cb", "NAT64 form of a loopback"),
    ("https://[fe80::1%25eth0]/cb", "link-local"),
    ("https://[fc00::5]/cb", "private"),
    ("https://[ff02::1]/cb", "multicast"),
    ("https://0.0.0.0/cb", "unspecified"),
    ("https://[::]/cb", "unspecified"),
    ("https://100.64.0.1/cb", "carrier-grade NAT"),
    ("https://224.0.0.1/cb", "multicast"),
    ("https://240.0.0.1/cb", "reserved"),
    ("https://255.255.255.255/cb", "reserved"),
    ("https://192.0.2.10/cb", "documentation"),
    ("https://2130706433/cb", "ambiguous numeric"),
    ("https://0x7f.0.0.1/cb", "ambiguous numeric"),
    ("https://017700000001/cb", "ambiguous numeric"),
    ("https://internal.example.com/cb", "resolves to 10.1.2.3"),
    ("https://mixed.example.com/cb", "resolves to 10.0.0.7"),
    ("https://metadata.example.com/cb", "cloud metadata"),
    ("https://nat64.example.com/cb", "NAT64 form of a cloud metadata"),
    ("https://cgnat.example.com/cb", "carrier-grade NAT"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=[url for url, _ in HOSTILE])
def test_hostile_callbacks_are_refused_before_any_connection(url: str, reason: str, no_connect: None) -> None:
    # Given a hostile callback URL (and no local-cloud setting)
    # When a delivery is attempted
    # Then it is refused with the reason, and nothing was connected to
    with pytest.raises(UnsafeCallbackUrlError, match=reason):
        post(url, b"{}", {})


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/cb", "http://169.254.169.254/", "http://[::ffff:127.0.0.1]:8080/", "http://0.0.0.0:8080/",
     "ftp://127.0.0.1/", "http://internal.example.com/", "http://user:pw@127.0.0.1:8080/",
     "http://[fd00:ec2::254]/"],
)  # fmt: skip
def test_the_local_setting_allows_loopback_and_nothing_else(url: str, no_connect: None) -> None:
    with pytest.raises(UnsafeCallbackUrlError):
        post(url, b"{}", {}, allow_insecure=True)


def test_callbacks_that_can_only_be_checked_by_resolving_pass_the_request_time_check() -> None:
    # Given names that resolve to private addresses (the answer can change later, so the check is
    # repeated at every delivery)
    # When they are given as callbacks
    # Then the request-time check accepts the syntax, and resolving refuses them
    for name in ("internal.example.com", "mixed.example.com"):
        url = f"https://{name}/cb"
        assert check_callback_url(url) == url
        with pytest.raises(UnsafeCallbackUrlError):
            resolve_safe(name, 443)


def test_a_public_https_callback_is_allowed() -> None:
    # Given public callbacks, by name and by address
    # When they are checked and resolved
    # Then they pass, with every address of the name
    assert (
        check_callback_url("https://hooks.example.com/cb?token=x") == "https://hooks.example.com/cb?token=x"
    )
    assert check_callback_url("https://hooks.example.com:8443/cb") == "https://hooks.example.com:8443/cb"
    assert check_callback_url(f"https://[{PUBLIC_V6}]/cb") == f"https://[{PUBLIC_V6}]/cb"
    assert resolve_safe("hooks.example.com", 443) == [ipaddress.ip_address(PUBLIC_V4)]
    assert resolve_safe("dual.example.com", 443) == [ipaddress.ip_address(a) for a in DNS["dual.example.com"]]


def test_loopback_is_allowed_only_with_the_local_setting() -> None:
    for url in ("http://127.0.0.1:8080/cb", "http://[::1]:8080/cb", "http://localhost:8080/cb"):
        with pytest.raises(UnsafeCallbackUrlError):
            check_callback_url(url)
        assert check_callback_url(url, allow_insecure=True) == url
    with pytest.raises(UnsafeCallbackUrlError):
        resolve_safe("localhost", 8080)
    assert [str(ip) for ip in resolve_safe("localhost", 8080, allow_insecure=True)] == ["127.0.0.1", "::1"]


def test_the_local_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert insecure_allowed({}) is False
    assert insecure_allowed({"WEBHOOK_ALLOW_INSECURE": "false"}) is False
    assert insecure_allowed({"WEBHOOK_ALLOW_INSECURE": " TRUE "}) is True
    monkeypatch.setenv("WEBHOOK_ALLOW_INSECURE", "true")
    assert insecure_allowed() is True


def test_a_name_that_does_not_resolve_is_a_delivery_error_not_unsafe() -> None:
    # DNS can come back: a retry may succeed, so this is not a final failure
    with pytest.raises(DeliveryError, match="could not resolve"):
        post("https://gone.example.com/cb", b"{}", {})


# -- real requests to local servers -----------------------------------------------------------


class RecordingServer(ThreadingHTTPServer):
    seen: list[dict[str, Any]]


class Recorder(BaseHTTPRequestHandler):
    """Answers per path: /redirect 302, /huge a 1 MiB body, anything else 200 "ok"; records requests."""

    server: RecordingServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append(
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/target")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * (1024 * 1024) if self.path == "/huge" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def serve(context: ssl.SSLContext | None = None) -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_post_reaches_the_server_with_its_headers_and_body() -> None:
    with serve() as server:
        port = server.server_address[1]
        response = post(
            f"http://127.0.0.1:{port}/cb?x=1", b'{"a":1}', {"webhook-id": "msg_1"}, allow_insecure=True
        )
    assert (response.status, response.body_prefix, response.ok) == (200, b"ok", True)
    [request] = server.seen
    assert request["path"] == "/cb?x=1"
    assert request["body"] == b'{"a":1}'
    assert request["headers"]["webhook-id"] == "msg_1"
    assert request["headers"]["Host"] == f"127.0.0.1:{port}"


def test_a_post_to_an_ipv6_address_names_it_in_brackets() -> None:
    class V6Server(RecordingServer):
        address_family = socket.AF_INET6

    try:
        server = V6Server(("::1", 0), Recorder)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        response = post(f"http://[::1]:{port}/cb", b"{}", {}, allow_insecure=True)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status == 200
    assert server.seen[0]["headers"]["Host"] == f"[::1]:{port}"


def test_the_checked_address_is_the_one_connected_to(resolver: list[str]) -> None:
    # Given a name that resolves to the local server (allowed only with the local setting)
    DNS["receiver.example.com"] = ["127.0.0.1"]
    try:
        with serve() as server:
            port = server.server_address[1]
            # When a delivery is made to it
            response = post(f"http://receiver.example.com:{port}/cb", b"{}", {}, allow_insecure=True)
    finally:
        del DNS["receiver.example.com"]
    # Then the name was resolved once (no second lookup a DNS rebinding could answer differently),
    # and the request still names the host
    assert response.status == 200
    assert resolver == ["receiver.example.com"]
    assert server.seen[0]["headers"]["Host"] == f"receiver.example.com:{port}"


def test_redirects_are_not_followed() -> None:
    with serve() as server:
        response = post(
            f"http://127.0.0.1:{server.server_address[1]}/redirect", b"{}", {}, allow_insecure=True
        )
    # The 302 is the result (not a success); the Location was never requested
    assert (response.status, response.ok) == (302, False)
    assert [r["path"] for r in server.seen] == ["/redirect"]


def test_the_response_body_is_cut_at_the_limit() -> None:
    with serve() as server:
        response = post(
            f"http://127.0.0.1:{server.server_address[1]}/huge", b"{}", {}, allow_insecure=True,
            max_response_bytes=1000,
        )  # fmt: skip
    assert response.status == 200
    assert response.body_prefix == b"x" * 1000


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    # Given a server that accepts connections (the kernel does) but never reads or answers
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        started = time.monotonic()
        # When a delivery is made with a short read timeout
        with pytest.raises(DeliveryError, match="read timeout"):
            post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {}, allow_insecure=True,
                 read_timeout=0.3)  # fmt: skip
    # Then it gives up after about that long
    assert time.monotonic() - started < 2


def test_a_server_trickling_its_answer_is_cut_off_at_the_read_timeout() -> None:
    # Given a server that answers one byte every 50 ms, forever (each read succeeds in time)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def trickle() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                try:
                    connection.sendall(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(200):
                        connection.sendall(b"X-Slow: y\r\n")
                        time.sleep(0.05)
                except OSError:
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        started = time.monotonic()
        # When a delivery is made with a 0.5 s read timeout
        with pytest.raises(DeliveryError, match="read timeout"):
            post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {}, allow_insecure=True,
                 read_timeout=0.5)  # fmt: skip
        # Then the whole answer was bounded, not each read
        assert time.monotonic() - started < 2
        thread.join(timeout=5)


def test_a_closed_port_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryError, match="connection refused"):
        post(f"http://127.0.0.1:{port}/", b"{}", {}, allow_insecure=True)


def test_a_connect_timeout_is_a_delivery_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_args: Any, **_kwargs: Any) -> Any:
        raise TimeoutError("timed out")

    monkeypatch.setattr(ssrf, "_connect", slow)
    with pytest.raises(DeliveryError, match="connect timeout"):
        post("https://hooks.example.com/cb", b"{}", {})


def test_a_resolver_that_never_answers_is_a_delivery_error_within_the_dns_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """getaddrinfo has no timeout of its own: a hung resolver held the worker with no bound at all."""
    release = threading.Event()

    def hung(*_args: Any, **_kwargs: Any) -> Any:
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match=r"no answer within 0.2 s"):
            post("https://hooks.example.com/cb", b"{}", {}, dns_timeout=0.2)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 2


def test_the_worst_case_of_one_request_is_the_sum_of_its_timeouts() -> None:
    assert ssrf.MAX_REQUEST_SECONDS == ssrf.DNS_TIMEOUT + 3 * ssrf.CONNECT_TIMEOUT + ssrf.READ_TIMEOUT == 21


# -- URLs beyond ASCII --------------------------------------------------------------------------


def test_a_callback_url_with_a_non_ascii_path_is_percent_encoded_when_checked() -> None:
    """The defect this guards: such a URL was accepted as given, and each delivery attempt then failed with
    UnicodeEncodeError (an HTTP request line is ASCII), for the whole 17.5 hours of retries."""
    url = "https://hooks.example.com/crochets/café/ünïcode?name=Zoë&tag=%E2%9C%93#ß"
    checked = check_callback_url(url)
    assert checked == (
        "https://hooks.example.com/crochets/caf%C3%A9/%C3%BCn%C3%AFcode?name=Zo%C3%AB&tag=%E2%9C%93#%C3%9F"
    )
    assert checked.isascii()
    assert check_callback_url(checked) == checked  # already encoded: unchanged


def test_a_post_to_a_non_ascii_path_reaches_the_server() -> None:
    with serve() as server:
        port = server.server_address[1]
        response = post(f"http://127.0.0.1:{port}/hooks/café?q=é", b"{}", {}, allow_insecure=True)
    assert response.status == 200
    assert [request["path"] for request in server.seen] == ["/hooks/caf%C3%A9?q=%C3%A9"]


# -- TLS against the original host name --------------------------------------------------------


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name``: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for receiver.example.com, which resolves to it,
    and a client trust store holding that certificate; yields its port and the SNI names it saw."""
    cert, key = _certificate(tmp_path, "receiver.example.com")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    sni: list[str | None] = []

    def record_sni(_sock: Any, name: str, _context: ssl.SSLContext) -> None:
        sni.append(name)

    server_context.sni_callback = record_sni
    original = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: original(cafile=str(cert)))
    DNS["receiver.example.com"] = ["127.0.0.1"]
    DNS["other.example.com"] = ["127.0.0.1"]
    try:
        with serve(server_context) as server:
            yield server.server_address[1], sni
    finally:
        del DNS["receiver.example.com"], DNS["other.example.com"]


def test_https_to_the_checked_address_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[int, list[str | None]],
) -> None:
    port, sni = tls_receiver
    # When a delivery goes to https://receiver.example.com (resolved to the checked 127.0.0.1)
    response = post(f"https://receiver.example.com:{port}/cb", b"{}", {}, allow_insecure=True)
    # Then TLS named the host (SNI) and its certificate was accepted for it
    assert response.status == 200
    assert sni == ["receiver.example.com"]


def test_https_refuses_a_certificate_for_another_name(tls_receiver: tuple[int, list[str | None]]) -> None:
    port, _ = tls_receiver
    # When the same server is reached under a name its certificate does not cover
    # Then the handshake fails: connecting by address does not skip host name verification
    with pytest.raises(DeliveryError, match="TLS certificate verification failed"):
        post(f"https://other.example.com:{port}/cb", b"{}", {}, allow_insecure=True)
