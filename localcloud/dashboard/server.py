"""The dashboard's HTTP server: the page, its JSON endpoints and a server-sent-event stream.

Served on loopback only, to a browser on the same machine. Reading needs nothing; the actions
(a redrive, an extension panel's) are POSTs that carry the key of this run in ``X-Api-Key`` (saved for the user
only, see ``localcloud.state``). A request naming another host is refused (a DNS-rebinding page
cannot reach it), and a page on another origin cannot send the key header without a CORS
preflight, which is never granted. A refused request closes its connection, and only a plain
``Content-Length`` frames a body, so no part of a request is ever read as another one.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from localcloud.dashboard.data import DashboardData, NotFound
from localcloud.server import LocalCloudError
from localcloud.state import dashboard_key_file, save_secret

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY_BYTES = 4096
CONTENT_LENGTH = re.compile(r"[0-9]{1,9}")
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


class Problem(Exception):
    """An RFC 9457 problem answer."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail

    def body(self) -> dict[str, Any]:
        return {"type": "about:blank", "title": self.status.phrase, "status": self.status.value,
                "detail": self.detail}  # fmt: skip


class Dashboard:
    """Start with ``start()``; ``url`` is the page. ``interval`` is how often the stream sends the overview."""

    def __init__(self, data: DashboardData, *, api_key: str, port: int, interval: float = 1.0) -> None:
        self.data, self.api_key, self.interval = data, api_key, interval
        self.closing = threading.Event()
        try:
            self._server = _Server(("127.0.0.1", port), _Handler)
        except OSError as error:
            raise LocalCloudError(
                f"dashboard port {port} on 127.0.0.1 is in use ({error.strerror}): stop what runs there or pick another port"
            ) from error
        self._server.dashboard = self
        self.key_file = dashboard_key_file(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> Dashboard:
        try:
            save_secret(self.key_file, self.api_key)  # `python -m localcloud dashboard-key` reads it
        except OSError as error:
            self._server.server_close()
            raise LocalCloudError(
                f"cannot save the dashboard key in {self.key_file.parent} ({error.strerror}): "
                "set LOCALCLOUD_STATE_DIR to a directory you can write"
            ) from error
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()  # ends the event streams
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.key_file.unlink(missing_ok=True)

    # -- routing ---------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        match parts:
            case ["api", "overview"]:
                return self.data.overview()
            case ["api", "queues", name, "messages"]:
                return self.data.dead_letters(name)
            case ["api", "executions", arn]:
                return self.data.execution(arn)
            case ["api", "panels"]:
                return self.data.panel_list()
        raise Problem(HTTPStatus.NOT_FOUND, f"no dashboard endpoint GET {path}")

    def post(self, path: str, request: dict[str, Any]) -> Any:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        match parts:
            case ["api", "queues", name, "redrive"]:
                message_id = request.get("message_id")
                if message_id is not None and not isinstance(message_id, str):
                    raise Problem(HTTPStatus.BAD_REQUEST, "message_id must be a string (or left out for all)")
                return self.data.redrive(name, message_id)
            case ["api", panel, item, action] if panel in self.data.panels:
                return self.data.panel_action(panel, item, action, request)
        raise Problem(HTTPStatus.NOT_FOUND, f"no dashboard endpoint POST {path}")

    def check_key(self, key: str | None) -> None:
        if not key:
            raise Problem(
                HTTPStatus.UNAUTHORIZED,
                "actions need the local key in X-Api-Key (`localcloud up` prints it; "
                "`python -m localcloud dashboard-key` shows it)",
            )
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise Problem(
                HTTPStatus.FORBIDDEN,
                "X-Api-Key is not the local key of this cloud (it is new every run: "
                "`python -m localcloud dashboard-key` prints it)",
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    dashboard: Dashboard


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request before its connection is dropped

    def do_GET(self) -> None:
        self._serve(self._get)

    def do_POST(self) -> None:
        self._serve(self._post)

    def _serve(self, answer: Any) -> None:
        try:
            body = self._body()
            self._check_host()
            answer(urlsplit(self.path).path, body)
        except Problem as problem:
            self._problem(problem)
        except LocalCloudError as error:  # something the user can fix: a missing item, a refused action
            status = HTTPStatus.NOT_FOUND if isinstance(error, NotFound) else HTTPStatus.CONFLICT
            self._problem(Problem(status, str(error)))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the browser went away, or stalled mid-body
        except Exception as error:  # one bad request never stops the dashboard
            log.exception("dashboard request %s %s failed", self.command, self.path)
            self._problem(Problem(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}"))

    def _problem(self, problem: Problem) -> None:
        # Never reused: what is left of a refused request (a body past the cap, framing we cannot
        # trust) would be read as the next request.
        self.close_connection = True
        self._send(problem.status, problem.body(), content_type="application/problem+json")

    def _body(self) -> bytes:
        """The whole body, read before anything can refuse the request, so none of it is left on a
        connection. Only one plain Content-Length frames it (no sign, no chunks)."""
        if "Transfer-Encoding" in self.headers:
            raise Problem(
                HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not Transfer-Encoding"
            )
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if len(lengths) != 1 or not CONTENT_LENGTH.fullmatch(lengths[0].strip(" \t")):
            raise Problem(HTTPStatus.BAD_REQUEST, "Content-Length must be one number of bytes")
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            raise Problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _check_host(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in LOOPBACK_HOSTS:
            raise Problem(
                HTTPStatus.MISDIRECTED_REQUEST, "the dashboard answers only on 127.0.0.1 or localhost"
            )

    def _get(self, path: str, body: bytes) -> None:
        dashboard = self.server.dashboard
        if path == "/":
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path.startswith("/panels/") and path.endswith(".js"):
            script = dashboard.data.panel_script(unquote(path.removeprefix("/panels/").removesuffix(".js")))
            self._send_bytes(HTTPStatus.OK, script.encode(), CONTENT_TYPES[".js"])
        elif path == "/api/stream":
            self._stream(dashboard)
        else:
            self._send(HTTPStatus.OK, dashboard.get(path))

    def _post(self, path: str, body: bytes) -> None:
        dashboard = self.server.dashboard
        dashboard.check_key(self.headers.get("X-Api-Key"))
        try:
            request = json.loads(body or b"{}")
        except ValueError as error:
            raise Problem(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}") from error
        if not isinstance(request, dict):
            raise Problem(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        self._send(HTTPStatus.OK, dashboard.post(path, request))

    def _static(self, name: str) -> None:
        files = {path.name: path for path in STATIC.iterdir()}
        if name not in files:
            raise Problem(HTTPStatus.NOT_FOUND, f"no dashboard file {name}")
        self._send_bytes(HTTPStatus.OK, files[name].read_bytes(), CONTENT_TYPES[files[name].suffix])

    def _stream(self, dashboard: Dashboard) -> None:
        """The overview as server-sent events, every ``interval`` seconds, until the browser leaves."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(b"retry: 1000\n\n")
        while not dashboard.closing.is_set():
            try:
                event = (
                    b"event: overview\ndata: " + json.dumps(dashboard.data.overview(), default=str).encode()
                )
            except Exception as error:
                log.exception("dashboard overview failed")
                event = b"event: problem\ndata: " + json.dumps(f"{type(error).__name__}: {error}").encode()
            self.wfile.write(event + b"\n\n")
            self.wfile.flush()
            dashboard.closing.wait(dashboard.interval)

    def _send(self, status: HTTPStatus, payload: Any, content_type: str = "application/json") -> None:
        self._send_bytes(status, json.dumps(payload, default=str).encode(), content_type)

    def _send_bytes(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def version_string(self) -> str:
        return "localcloud-dashboard"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)
