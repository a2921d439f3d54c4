"""HTTP APIs (API Gateway v2) on the local API, as API Gateway serves them.

The stack is ``tests/e2e/http_api_app/app.py``, deployed with the CDK CLI: an HTTP API whose routes
integrate an echo function with payload format 2.0 (and one with 1.0). It is called at LocalStack's
path, ``/restapis/{api_id}/$default/_user_request_/{path}`` (the example's REST API has the root).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "http_api_app" / "app.py"


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.deploy(["HttpApiStack"], app=f"{sys.executable} {APP}").outputs


@pytest.fixture(scope="module")
def api(cloud: LocalCloud, outputs: dict[str, str]) -> str:
    """The base URL of the deployed HTTP API's $default stage."""
    return f"{cloud.api.url}/restapis/{outputs['HttpApiId']}/$default/_user_request_"


def call(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def test_a_route_gets_a_payload_2_event_and_its_structured_answer_is_the_response(api: str) -> None:
    """Payload format 2.0: routeKey, rawPath, rawQueryString, cookies, lower-cased headers joined with
    commas, pathParameters; the function's statusCode, headers and cookies make the response."""
    status, headers, event = call(
        f"{api}/items/42?a=1&a=2&b=x", headers={"Cookie": "one=1; two=2", "X-Multi": "v"}
    )
    assert status == 200 and headers["X-Echo"] == "yes" and headers["Set-Cookie"] == "session=abc; Path=/"
    assert event["version"] == "2.0" and event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/42" and event["rawQueryString"] == "a=1&a=2&b=x"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x"}
    assert event["pathParameters"] == {"id": "42"}
    assert event["cookies"] == ["one=1", "two=2"] and "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "v"
    context = event["requestContext"]
    assert context["http"]["method"] == "GET" and context["http"]["path"] == "/items/42"
    assert context["stage"] == "$default" and context["routeKey"] == "GET /items/{id}"


def test_the_most_specific_route_wins_and_a_greedy_one_takes_the_rest_of_the_path(api: str) -> None:
    _, _, special = call(f"{api}/items/special")
    _, _, greedy = call(f"{api}/files/a/b/c.txt", method="PUT", body=b"content")
    assert special["routeKey"] == "GET /items/special"
    assert greedy["routeKey"] == "ANY /files/{path+}" and greedy["pathParameters"] == {"path": "a/b/c.txt"}
    assert greedy["body"] == "content" and greedy["isBase64Encoded"] is False


def test_a_request_no_route_matches_goes_to_the_default_route(api: str) -> None:
    """The HTTP API's $default route (CDK's defaultIntegration) catches every unmatched request."""
    _, _, event = call(f"{api}/anything/else", method="DELETE")
    assert event["routeKey"] == "$default"


def test_an_answer_without_a_status_code_is_a_json_200(api: str) -> None:
    status, headers, body = call(f"{api}/items/7?plain=1")
    assert status == 200 and headers["Content-Type"] == "application/json" and body == {"plain": True}


def test_a_payload_1_integration_gets_the_rest_shaped_event(api: str) -> None:
    status, _, event = call(f"{api}/legacy/9", method="POST", body=b'{"x": 1}')
    assert status == 201
    assert event["version"] == "1.0" and event["httpMethod"] == "POST" and event["path"] == "/legacy/9"
    assert event["pathParameters"] == {"id": "9"} and event["body"] == '{"x": 1}'


def test_a_function_url_gets_a_payload_2_event_by_its_path_or_its_host(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """A function URL (https://{id}.lambda-url.{region}.on.aws/...) invokes its function with a payload 2.0
    event whose route key is $default; locally at /lambda-url/{id}/..., or with the URL's Host header."""
    host = urlsplit(outputs["EchoUrl"]).hostname or ""
    url_id = host.split(".", 1)[0]
    status, _, by_path = call(f"{cloud.api.url}/lambda-url/{url_id}/hello?x=1")
    _, _, by_host = call(f"{cloud.api.url}/hello", headers={"Host": host})
    assert status == 200
    for event in (by_path, by_host):
        assert event["version"] == "2.0" and event["routeKey"] == "$default" and event["rawPath"] == "/hello"
        assert event["requestContext"]["apiId"] == url_id
    assert by_path["queryStringParameters"] == {"x": "1"}
