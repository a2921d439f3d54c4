"""moto's server inside our own process, so the runtime can reach its state directly."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

REGION = "us-east-1"
ACCOUNT = "123456789012"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "localcloud", "AWS_SECRET_ACCESS_KEY": "localcloud"}


def local_client(
    service: str, endpoint: str, *, validate: bool = True, credentials: Mapping[str, str] | None = None
) -> Any:
    """A boto3 client for the local cloud at ``endpoint``, as the administrator unless given a role's
    ``credentials`` (environment variable names). ``validate=False`` lets the event source pollers
    long-poll for a fraction of a second (the rest of a batching window), which the local endpoint
    honours and the SQS API's whole seconds cannot express."""
    import boto3
    from botocore.config import Config

    keys = credentials or DUMMY_CREDENTIALS
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=keys.get("AWS_SESSION_TOKEN"),
        # shared by the runtime's threads (pollers, async workers, scheduler); one host answers every
        # operation, so no host prefix (StartSyncExecution's "sync-")
        config=Config(max_pool_connections=64, parameter_validation=validate, inject_host_prefix=False),
    )  # fmt: skip


class LocalCloudError(RuntimeError):
    """Something the user can fix; printed as one line by the CLI."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise LocalCloudError(
                f"port {port} on {host} is in use ({error.strerror}): stop what runs there or pick another port"
            ) from error


# moto's backends are not thread-safe: every request, and every in-process access that writes
# to a backend, holds this lock.
MOTO_LOCK = threading.RLock()
_INVOCATION_PATH = re.compile(r"^/20\d\d-\d\d-\d\d/functions/[^/]+/(invocations|invoke-async/?)$")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

# SQS operations after which a waiting receiver of the queue may find a message without one being
# added: a message made visible, or a FIFO message group unblocked by a delete.
_FREES_MESSAGES = ("ChangeMessageVisibility", "DeleteMessage")
# The long-poll waiters to tell when a message is added to a queue (SerializedMotoApp.mark_changed).
_queue_listeners: list[Callable[[str], None]] = []


def message_added(queue: str) -> None:
    """Called by moto's SQS (``localcloud.sqs.patches``) whenever a message is added to ``queue``."""
    for listener in tuple(_queue_listeners):
        listener(queue)


def _seconds_to_next_message(queue: str) -> float | None:
    """Seconds until the next hidden or delayed message of ``queue`` (a name) becomes receivable on
    SQS's clock, or None if none is waiting for its time. Called under MOTO_LOCK."""
    from moto.sqs import models

    found = models.sqs_backends[ACCOUNT][REGION].queues.get(queue)
    if found is None:
        return None
    now = models.unix_time_millis()
    due = [ready for m in found._messages if (ready := max(m.visible_at, m.delayed_until)) > now]
    return (min(due) - now) / 1000 if due else None


# The local cloud's own endpoints live under this prefix on the AWS endpoint's port.
CONTROL_PREFIX = "/_localcloud/"
ControlHandler = Callable[[str, str, bytes], tuple[int, Any]]


@dataclass(frozen=True)
class HookResponse:
    """What a request hook answers instead of moto (an injected error): status, JSON body."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/x-amz-json-1.0"),)


@dataclass(frozen=True)
class HookRewrite:
    """The request served with another body, and moto's JSON answer amended (e.g. items handed back
    as unprocessed)."""

    body: bytes
    amend: Callable[[dict[str, Any]], dict[str, Any]]


# Called with (service, operation), the WSGI environ and the body before a request is served. A
# hook that returns a HookResponse answers the request itself (moto never sees it); one that
# returns a HookRewrite changes what moto is asked and what it answers.
RequestHook = Callable[[tuple[str, str], dict[str, Any], bytes], HookResponse | HookRewrite | None]
# An operation the local cloud answers itself, outside moto's lock (it waits on other requests):
# given the JSON request body, its HTTP status and JSON answer.
Operation = Callable[[bytes], tuple[int, dict[str, Any]]]
# What the endpoint answers instead of moto when a request is refused: status, headers, body.
Refusal = tuple[int, list[tuple[str, str]], bytes]
# Given the request's service (signing name), WSGI environ and body: None to serve it, or its refusal.
Authorizer = Callable[[str, dict[str, Any], bytes], "Refusal | None"]


class ApiCallCounter:
    """AWS API calls by service and operation, as the local endpoint received them."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, environ: dict[str, Any], body: bytes) -> tuple[str, str]:
        service, operation = self.classify(environ, body)
        with self._lock:
            self._counts[service, operation] += 1
        return service, operation

    @staticmethod
    def classify(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
        scope = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(1) if scope else "unsigned"
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return service, target.rsplit(".", 1)[-1]
        for source in (environ.get("QUERY_STRING", ""), body[:2000].decode("utf-8", "replace")):
            action = parse_qs(source).get("Action")
            if action:
                return service, action[0]
        path = environ.get("PATH_INFO", "")
        if service == "lambda" and _INVOCATION_PATH.match(path):
            return service, "Invoke"
        segments = [part for part in path.split("/") if part and not part[:4].isdigit()]
        return service, f"{environ.get('REQUEST_METHOD', 'GET')} /{segments[0] if segments else ''}"

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            result: dict[str, dict[str, int]] = {}
            for (service, operation), count in sorted(self._counts.items()):
                result.setdefault(service, {})[operation] = count
            return result

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class SerializedMotoApp:
    """moto's WSGI app with one request at a time, API calls counted, and the control endpoints.

    Concurrent ``TransactWriteItems`` in moto restore a deep copy of the table on failure and can
    undo other requests' writes, hence the lock. Two kinds of request run outside it: Lambda
    invocations (the handler calls back into moto while it runs) and SQS long polls, emulated
    with short polls so a waiting receiver does not stall everyone else. A waiting receiver polls
    again only when its queue may have a message for it: one was added to it (whatever added it:
    a send, SNS or EventBridge fan-out, an S3 notification, a redrive), one of its messages was
    deleted or made visible, the next hidden or delayed message's time came, or the local clock
    moved (``wake_all``). An idle long poll costs nothing until then.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.api_calls = ApiCallCounter()
        self.control: ControlHandler | None = None
        # Fault injection (tests, chaos runs): hooks see each request before moto serves it.
        self.request_hooks: list[RequestHook] = []
        self.operations: dict[tuple[str, str], Operation] = {}  # by (service, operation)
        self.authorizer: Authorizer | None = None
        self.changed = threading.Condition()
        # Bumped per queue when it may have a new message for a waiting receiver; "" bumps them all.
        self.generations: Counter[str] = Counter()
        _queue_listeners.append(self.mark_changed)

    def _generation(self, queue: str) -> int:
        return self.generations[queue] + self.generations[""]

    def _wait_for_change(self, queue: str, seen: int, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self._generation(queue) != seen, timeout)

    def mark_changed(self, queue: str) -> None:
        """``queue`` (a name; "" for every queue) may have a message for a waiting receiver."""
        with self.changed:
            self.generations[queue] += 1
            self.changed.notify_all()

    def wake_all(self) -> None:
        """Every waiting receiver polls again (the local clock moved: hidden and delayed messages may
        have come due)."""
        self.mark_changed("")

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            _queue_listeners.remove(self.mark_changed)

    @staticmethod
    def _queue_of(call: tuple[str, str], body: bytes) -> str:
        """The queue an SQS JSON request names; "" (every queue) for other services."""
        if call[0] != "sqs":
            return ""
        try:
            return str(json.loads(body).get("QueueUrl", "")).rsplit("/", 1)[-1]
        except (ValueError, AttributeError):
            return ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, path, body, start_response)
        call = self.api_calls.count(environ, body)
        rewrite: HookRewrite | None = None
        for hook in tuple(self.request_hooks):
            answer = hook(call, environ, body)
            if isinstance(answer, HookResponse):
                return self._answer(answer, start_response)
            if answer is not None:
                rewrite, body = answer, answer.body
        outside = self._outside_the_lock(call, environ, path, body, start_response)
        if outside is not None:
            return outside
        receive = call == ("sqs", "ReceiveMessage")
        wait = self._long_poll_seconds(environ, body) if receive else 0.0
        frees = call[0] == "sqs" and call[1].startswith(_FREES_MESSAGES)
        queue = self._queue_of(call, body) if receive or frees else ""
        deadline = time.monotonic() + wait
        while True:
            captured: list[Any] = []
            generation = self._generation(queue)
            with MOTO_LOCK:
                served = self._without_wait(body) if wait else body
                # The rewritten body can be shorter ("20" -> "0"): a stale length makes the read fail.
                environ["CONTENT_LENGTH"] = str(len(served))
                environ["wsgi.input"] = io.BytesIO(served)
                result = list(self.app(environ, lambda *args, into=captured: into.append(args)))
                received = b'"Messages"' in b"".join(result)
                due = _seconds_to_next_message(queue) if wait and not received else None
            if frees:
                self.mark_changed(queue)
            left = deadline - time.monotonic()
            if not wait or received or left <= 0:
                if rewrite is not None and captured[0][0].startswith("200"):
                    return self._amended(rewrite, result, captured[0], start_response)
                start_response(*captured[0])
                return result
            self._wait_for_change(queue, generation, left if due is None else min(left, due))

    def _outside_the_lock(
        self, call: tuple[str, str], environ: dict[str, Any], path: str, body: bytes, start_response: Any
    ) -> list[bytes] | None:
        """The answer to a request served without holding moto's lock throughout: refused by the
        authoriser, a Lambda invocation, or an operation the local cloud serves itself. None otherwise."""
        refusal = self._authorise(call, environ, body)
        if refusal is not None:
            status, headers, data = refusal
            start_response(
                f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(data)))]
            )
            return [data]
        if _INVOCATION_PATH.match(path):
            environ["wsgi.input"] = io.BytesIO(body)
            return list(self.app(environ, start_response))
        operation = self.operations.get(call)
        if operation is not None:
            status, payload = operation(body)
            return self._answer(HookResponse(status, payload), start_response)
        return None

    def _authorise(self, call: tuple[str, str], environ: dict[str, Any], body: bytes) -> Refusal | None:
        if self.authorizer is None:
            return None
        try:
            return self.authorizer(call[0], environ, body)
        except Exception:  # a fault of the authoriser: served, and said loudly
            logging.getLogger(__name__).exception("authorising %s:%s failed; the request is served", *call)
            return None

    @staticmethod
    def _answer(answer: HookResponse, start_response: Any) -> list[bytes]:
        data = json.dumps(answer.body).encode()
        start_response(
            f"{answer.status} {HTTPStatus(answer.status).phrase}",
            [*answer.headers, ("Content-Length", str(len(data)))],
        )
        return [data]

    @staticmethod
    def _amended(
        rewrite: HookRewrite, result: list[bytes], response: Any, start_response: Any
    ) -> list[bytes]:
        data = json.dumps(rewrite.amend(json.loads(b"".join(result) or b"{}"))).encode()
        status, headers, *rest = response
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(data)))], *rest)
        return [data]

    @staticmethod
    def _long_poll_seconds(environ: dict[str, Any], body: bytes) -> float:
        try:
            return float(json.loads(body).get("WaitTimeSeconds") or 0)
        except (ValueError, AttributeError):
            return 0.0

    @staticmethod
    def _without_wait(body: bytes) -> bytes:
        request = json.loads(body)
        request["WaitTimeSeconds"] = 0
        return json.dumps(request).encode()

    def _control(self, environ: dict[str, Any], path: str, body: bytes, start_response: Any) -> list[bytes]:
        if self.control is None:
            status, payload = 503, {"message": "the local cloud is starting"}
        else:
            try:
                status, payload = self.control(environ["REQUEST_METHOD"], path[len(CONTROL_PREFIX) :], body)
            except Exception as error:  # reported to the CLI, never kills the server thread
                status, payload = 500, {"message": f"{type(error).__name__}: {error}"}
        data = json.dumps(payload, default=str).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
        start_response(
            f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]


_ORIGIN = re.compile(r"^https?://[^/\s*?#@]+$")
_BROWSER_SITES = ("cross-site", "same-site")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_HOST_PORT = re.compile(r"^\[?(?P<name>[^\]]*?)\]?(:\d+)?$")


def _loopback_host(host_header: str, bound: str) -> bool:
    """The Host header names this machine: a page that rebinds its own name to 127.0.0.1 is refused."""
    match = _HOST_PORT.match(host_header.strip().lower())
    name = match.group("name").rstrip(".") if match else ""
    if name in _LOOPBACK_NAMES or name.endswith(".localhost") or name == bound:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_origin(origin: str) -> str:
    """``origin`` as browsers send it (``scheme://host[:port]``, lower case), or a LocalCloudError."""
    normal = origin.strip().rstrip("/").lower()
    if not _ORIGIN.match(normal):
        raise LocalCloudError(
            f"{origin!r} is not an origin to allow: give one page's scheme://host[:port], "
            "e.g. --allow-origin http://localhost:5173 (never *)"
        )
    return normal


class OriginGate:
    """Refuses what a browser sends for a web page (``Origin``, a cross-site ``Sec-Fetch-Site``, a
    CORS preflight) unless that page's origin is allowed. The endpoint has no authentication, so
    otherwise any page the user opens could read and change the cloud's state. AWS SDKs and the AWS
    CLI send none of these headers."""

    def __init__(self, app: Any, allowed_origins: Iterable[str] = (), *, host: str = "127.0.0.1") -> None:
        self.app = app
        self.allowed = frozenset(allowed_origin(origin) for origin in allowed_origins)
        self.host = host

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # DNS rebinding: a page whose name now resolves to 127.0.0.1 is "same-origin" to itself and sends
        # no Origin on a GET, but its requests still carry its own name as Host.
        if not _loopback_host(environ.get("HTTP_HOST", ""), self.host):
            return self._refuse(f"requests for host {environ.get('HTTP_HOST')!r}", start_response)
        origin = environ.get("HTTP_ORIGIN")
        preflight = (
            environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        )
        if origin is None:
            if preflight or environ.get("HTTP_SEC_FETCH_SITE", "").lower() in _BROWSER_SITES:
                return self._refuse("requests a browser sends for another site", start_response)
            return self.app(environ, start_response)
        if origin not in self.allowed:
            return self._refuse(f"requests from web pages (origin {origin})", start_response)
        if preflight:
            headers = [
                *self._allow(origin),
                ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"),
                ("Access-Control-Allow-Headers", environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")),
                ("Access-Control-Max-Age", "600"),
            ]
            start_response("204 No Content", headers)
            return [b""]

        def allowing(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            # Ours replace any moto sets (S3 answers bucket CORS rules, possibly with *).
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            exposed = ("Access-Control-Expose-Headers", ", ".join(name for name, _ in kept))
            return start_response(status, [*kept, *self._allow(origin), exposed], *exc_info)

        return self.app(environ, allowing)

    @staticmethod
    def _allow(origin: str) -> list[tuple[str, str]]:
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    @staticmethod
    def _refuse(what: str, start_response: Any) -> list[bytes]:
        message = (
            f"{what} are refused: the local cloud has no authentication. "
            "Allow a page you trust with `python -m localcloud up --allow-origin <its origin>`"
        )
        data = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Vary", "Origin")],
        )
        return [data]


@contextmanager
def moto_server(port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """Run moto's server on ``host:port`` for the duration of the block; yields the endpoint URL."""
    with serve_moto(port, host) as app:
        yield f"http://{host}:{port}"
        del app


@contextmanager
def serve_moto(
    port: int, host: str = "127.0.0.1", *, allowed_origins: Iterable[str] = ()
) -> Iterator[SerializedMotoApp]:
    """Run moto's server on ``host:port`` for the duration of the block; yields the app (counters, hooks).
    Web pages may call it only from ``allowed_origins`` (see OriginGate)."""
    _ensure_free(host, port)
    from moto.moto_server import werkzeug_app
    from werkzeug.serving import make_server

    # moto grants CORS to every origin (flask-cors on each service's app, built on first use):
    # off, and OriginGate decides instead.
    werkzeug_app.DISABLE_GLOBAL_CORS = True
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    app = SerializedMotoApp(werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app))
    gate = OriginGate(app, allowed_origins, host=host)
    server = make_server(host, port, gate, threaded=True, request_handler=werkzeug_app.MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.close()
        server.shutdown()
        thread.join(timeout=5)
