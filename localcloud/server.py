"""moto's server inside our own process, so the runtime can reach its state directly."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "localcloud", "AWS_SECRET_ACCESS_KEY": "localcloud"}


def local_client(service: str, endpoint: str) -> Any:
    """A boto3 client for the local cloud at ``endpoint``."""
    import boto3

    return boto3.session.Session().client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="localcloud", aws_secret_access_key="localcloud",
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


class SerializedMotoApp:
    """moto's WSGI app with one request at a time.

    moto's backends are not thread-safe: concurrent ``TransactWriteItems`` restore a deep copy
    of the table on failure and can undo other requests' writes. SQS long polls are emulated
    with short polls outside the lock, so a waiting receiver does not stall everyone else.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        wait = self._long_poll_seconds(environ, body)
        deadline = time.monotonic() + wait
        while True:
            captured: list[Any] = []
            with self.lock:
                environ["wsgi.input"] = io.BytesIO(self._without_wait(body) if wait else body)
                result = list(self.app(environ, lambda *args, into=captured: into.append(args)))
            if not wait or b'"Messages"' in b"".join(result) or time.monotonic() >= deadline:
                start_response(*captured[0])
                return result
            time.sleep(0.05)

    @staticmethod
    def _long_poll_seconds(environ: dict[str, Any], body: bytes) -> float:
        if environ.get("HTTP_X_AMZ_TARGET") != "AmazonSQS.ReceiveMessage":
            return 0.0
        try:
            return float(json.loads(body).get("WaitTimeSeconds") or 0)
        except (ValueError, AttributeError):
            return 0.0

    @staticmethod
    def _without_wait(body: bytes) -> bytes:
        request = json.loads(body)
        request["WaitTimeSeconds"] = 0
        return json.dumps(request).encode()


@contextmanager
def moto_server(port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """Run moto's server on ``host:port`` for the duration of the block; yields the endpoint URL."""
    _ensure_free(host, port)
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    app = SerializedMotoApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
