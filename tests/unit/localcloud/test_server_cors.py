"""The AWS endpoint refuses what a web page's browser sends it, unless the page's origin is allowed."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from localcloud.__main__ import parser
from localcloud.cloud import LocalCloud
from localcloud.server import LocalCloudError, free_port, local_client, serve_moto

pytestmark = pytest.mark.unit

EVIL = "https://evil.example"
TRUSTED = "http://localhost:5173"


def signed_for(service: str) -> str:
    """An Authorization header as an SDK signs it (moto reads the service; it checks no signature)."""
    return (
        f"AWS4-HMAC-SHA256 Credential=localcloud/20261129/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0"
    )


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@dataclass
class Endpoint:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def send(
        self, method: str, path: str = "/", headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def json_call(self, target: str, service: str, payload: dict[str, object], origin: str | None) -> Answer:
        headers = {
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": signed_for(service),
        }
        if origin is not None:
            headers["Origin"] = origin
        return self.send("POST", "/", headers, json.dumps(payload).encode())

    def queue_names(self) -> list[str]:
        urls = local_client("sqs", self.url).list_queues().get("QueueUrls", [])
        return [url.rsplit("/", 1)[-1] for url in urls]


@contextmanager
def endpoint(allowed_origins: tuple[str, ...] = ()) -> Iterator[Endpoint]:
    port = free_port()
    with serve_moto(port, allowed_origins=allowed_origins):
        yield Endpoint(port)


@pytest.fixture
def aws_endpoint() -> Iterator[Endpoint]:
    with endpoint() as served:
        yield served


def assert_refused(answer: Answer) -> None:
    assert answer.status == 403, answer.body
    assert answer.headers.get("Access-Control-Allow-Origin") is None
    assert "origin" in json.loads(answer.body)["message"]


def test_a_preflight_from_another_origin_is_refused(aws_endpoint: Endpoint) -> None:
    # Given a page on another origin that wants to send signed AWS calls
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-amz-target,content-type",
    }
    # When its browser asks the endpoint first
    answer = aws_endpoint.send("OPTIONS", "/", preflight)
    # Then nothing is granted: the browser never sends the call
    assert_refused(answer)
    assert answer.headers.get("Access-Control-Allow-Headers") is None


def test_cross_origin_calls_are_refused_and_change_nothing(aws_endpoint: Endpoint) -> None:
    # Given a page on another origin sending the calls itself (as a simple request would)
    name = f"stolen-{uuid.uuid4().hex[:8]}"
    # When it creates a queue and lists the secrets
    created = aws_endpoint.json_call("AmazonSQS.CreateQueue", "sqs", {"QueueName": name}, EVIL)
    listed = aws_endpoint.json_call("secretsmanager.ListSecrets", "secretsmanager", {}, EVIL)
    # Then both are refused before moto sees them: no queue exists, no secret list is answered
    assert_refused(created)
    assert_refused(listed)
    assert name not in aws_endpoint.queue_names()


def test_a_cross_site_request_without_origin_is_refused(aws_endpoint: Endpoint) -> None:
    # Given a request a browser sends for another site's page without an Origin (a no-cors GET)
    for site in ("cross-site", "same-site"):
        # When it reaches the endpoint (S3 ListBuckets)
        answer = aws_endpoint.send("GET", "/", {"Sec-Fetch-Site": site, "Authorization": signed_for("s3")})
        # Then it is refused as any browser-origin request is
        assert_refused(answer)
    # And the same request without the browser's header is served
    assert aws_endpoint.send("GET", "/", {"Authorization": signed_for("s3")}).status == 200


def test_a_page_that_rebinds_its_name_to_this_machine_is_refused(aws_endpoint: Endpoint) -> None:
    """DNS rebinding: evil.example now resolves to 127.0.0.1, so its page's GETs are same-origin to it and
    carry no Origin, but they carry its name as Host."""
    for host in ("evil.example", f"evil.example:{aws_endpoint.port}", "127.0.0.1.nip.io"):
        answer = aws_endpoint.send("GET", "/_localcloud/status", {"Host": host})
        assert answer.status == 403, (host, answer.body)
        assert "host" in json.loads(answer.body)["message"]
    # And the names of this machine are served (S3's virtual-hosted buckets live under .localhost)
    for host in (f"127.0.0.1:{aws_endpoint.port}", "localhost", "[::1]:4566", "my-bucket.localhost:4566"):
        assert aws_endpoint.send("GET", "/", {"Host": host, "Authorization": signed_for("s3")}).status != 403


def test_sdk_calls_without_origin_are_served(aws_endpoint: Endpoint) -> None:
    # Given an AWS SDK client (it sends no Origin and no Sec-Fetch-Site)
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    # When it creates a queue, and a raw call lists the secrets
    local_client("sqs", aws_endpoint.url).create_queue(QueueName=name)
    listed = aws_endpoint.json_call("secretsmanager.ListSecrets", "secretsmanager", {}, None)
    # Then both are served, without any CORS header
    assert name in aws_endpoint.queue_names()
    assert listed.status == 200, listed.body
    assert listed.headers.get("Access-Control-Allow-Origin") is None


def test_an_allowed_origin_gets_its_preflight_and_its_own_origin_back() -> None:
    # Given an endpoint that allows one origin explicitly
    with endpoint(allowed_origins=(TRUSTED,)) as served:
        # When that origin's browser sends a preflight and then the call
        preflight = served.send(
            "OPTIONS", "/",
            {"Origin": TRUSTED, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,x-amz-target"},
        )  # fmt: skip
        name = f"trusted-{uuid.uuid4().hex[:8]}"
        created = served.json_call("AmazonSQS.CreateQueue", "sqs", {"QueueName": name}, TRUSTED)
        # Then both are answered for that origin only, never for any origin (*)
        assert preflight.status in (200, 204)
        assert preflight.headers.get_all("Access-Control-Allow-Origin") == [TRUSTED]
        assert "x-amz-target" in (preflight.headers.get("Access-Control-Allow-Headers") or "").lower()
        assert "POST" in (preflight.headers.get("Access-Control-Allow-Methods") or "")
        assert created.status == 200, created.body
        assert created.headers.get_all("Access-Control-Allow-Origin") == [TRUSTED]
        assert name in served.queue_names()
        # And another origin is still refused
        assert_refused(served.json_call("AmazonSQS.ListQueues", "sqs", {}, EVIL))


def test_allow_origin_is_a_repeatable_flag_of_up_and_a_wildcard_is_refused() -> None:
    # Given `up` with two allowed origins
    args = parser().parse_args(["up", "--allow-origin", TRUSTED, "--allow-origin", "http://127.0.0.1:8080"])
    # Then both are kept, in order
    assert args.allowed_origins == [TRUSTED, "http://127.0.0.1:8080"]
    # And an origin that is not one (any origin, a path) is refused when the cloud is made
    for wrong in ("*", "https://ok.example/path", "evil.example"):
        with pytest.raises(LocalCloudError, match="origin"):
            LocalCloud(port=free_port(), api_port=None, allowed_origins=(wrong,))
