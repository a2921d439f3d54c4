"""The local API's chunked request bodies over raw sockets: sizes parsed strictly, 10 MB enforced
before a chunk is read, and a connection whose framing cannot be trusted closed."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import boto3
import pytest

from localcloud.apigateway.local_api import MAX_BODY_BYTES, LocalApi
from localcloud.server import free_port
from tests.unit.conftest import REGION
from tests.unit.localcloud.test_local_api import FakeFunction, add_route, lambda_function

pytestmark = pytest.mark.unit

HEAD = b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
def function() -> FakeFunction:
    return FakeFunction()


@pytest.fixture
def local_api(aws: None, function: FakeFunction) -> Iterator[LocalApi]:
    """POST /orders integrated with a function, behind the local API."""
    apigateway = boto3.client("apigateway", region_name=REGION)
    api_id = apigateway.create_rest_api(name="orders-api")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    orders = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="orders")["id"]
    add_route(api_id, orders, "POST", lambda_function())
    apigateway.create_deployment(restApiId=api_id, stageName="prod")
    with LocalApi(invoke=function, api_key=None, port=free_port()) as api:
        yield api


def exchange(api: LocalApi, raw: bytes) -> tuple[bytes, bool]:
    """All the local API answers to ``raw`` on one connection, and whether it closed it (one still
    open after 5 s would wait for more of the body, or another request)."""
    with socket.create_connection((api.host, api.port), timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


def statuses(received: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)]


@pytest.mark.parametrize("size", [b"-1", b"-5", b"0x10", b"+5", b" 5", b"5 5", b"zz", b"", b"1" * 17])
def test_a_chunk_size_that_is_not_hex_digits_is_400_and_closes(
    local_api: LocalApi, function: FakeFunction, size: bytes
) -> None:
    # Given a chunked body whose first size line is not hex digits (a negative one once made the
    # reader read until the client left); the client keeps the connection open
    raw = HEAD + size + b"\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"
    # When it is sent
    received, closed = exchange(local_api, raw)
    # Then it is refused as malformed before the function, and the connection is closed
    assert statuses(received) == [400]
    assert closed
    assert function.calls == []


def test_a_chunk_over_10_mb_is_413_before_its_data_is_read(
    local_api: LocalApi, function: FakeFunction
) -> None:
    # Given one chunk declared one byte over 10 MB, its data not sent
    raw = HEAD + b"%x\r\n" % (MAX_BODY_BYTES + 1)
    # When its size line arrives
    received, closed = exchange(local_api, raw)
    # Then API Gateway's 413 answers at once (nothing waits for the data) and the connection is closed
    assert statuses(received) == [413]
    assert json.loads(received.split(b"\r\n\r\n", 1)[1]) == {"message": "Request Too Long"}
    assert b"\r\nConnection: close\r\n" in received
    assert closed
    assert function.calls == []


def test_chunks_adding_up_past_10_mb_are_413_before_the_last_is_read(
    local_api: LocalApi, function: FakeFunction
) -> None:
    # Given a 6 MB chunk, then the size line of another 5 MB
    first = 6 * 1024 * 1024
    raw = HEAD + b"%x\r\n" % first + b"x" * first + b"\r\n" + b"%x\r\n" % (5 * 1024 * 1024)
    # When they are sent
    received, closed = exchange(local_api, raw)
    # Then the total is refused on the second size line, and the connection is closed
    assert statuses(received) == [413]
    assert closed
    assert function.calls == []


def test_chunk_data_not_ending_its_line_is_400_and_closes(
    local_api: LocalApi, function: FakeFunction
) -> None:
    # Given a chunk carrying more bytes than its size says
    received, closed = exchange(local_api, HEAD + b"5\r\nhello, world\r\n0\r\n\r\n")
    # Then the body is refused as malformed
    assert (statuses(received), closed, function.calls) == ([400], True, [])


def test_a_chunked_body_with_extensions_and_trailers_reaches_the_function(
    local_api: LocalApi, function: FakeFunction
) -> None:
    # Given a body in two chunks, one with a chunk extension, and a trailer
    raw = HEAD + b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    # When it is sent (and the client asks nothing more)
    received, _ = exchange(local_api, raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    # Then the function gets the whole body
    assert statuses(received) == [200]
    assert function.event["body"] == "hello world"
