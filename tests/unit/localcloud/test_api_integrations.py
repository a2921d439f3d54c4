"""REST API integrations other than Lambda proxy on the local API: mapping templates, passthrough
behaviour, integration responses chosen by selection pattern, MOCK, Lambda without proxy and
HTTP_PROXY, as API Gateway's developer guide describes them ("Set up integration requests and
responses", "Mapping template reference")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from localcloud.apigateway.local_api import FunctionError, LocalApi
from localcloud.apigateway.templates import render, select
from localcloud.server import free_port
from tests.unit.localcloud.test_local_api import API_KEY, REGION, FakeFunction, call, lambda_function

pytestmark = pytest.mark.unit


class Api:
    """A REST API in moto with one resource per test, deployed to stage ``prod``."""

    def __init__(self) -> None:
        self.client = boto3.client("apigateway", region_name=REGION)
        self.id = self.client.create_rest_api(name="integrations")["id"]
        self.root = self.client.get_resources(restApiId=self.id)["items"][0]["id"]

    def method(
        self, path_part: str, http_method: str, integration: dict[str, Any],
        responses: list[dict[str, Any]] = (),  # type: ignore[assignment]
    ) -> None:  # fmt: skip
        resource = self.client.create_resource(restApiId=self.id, parentId=self.root, pathPart=path_part)[
            "id"
        ]
        self.client.put_method(
            restApiId=self.id, resourceId=resource, httpMethod=http_method, authorizationType="NONE"
        )
        self.client.put_integration(
            restApiId=self.id, resourceId=resource, httpMethod=http_method, **integration
        )
        for response in responses:
            self.client.put_integration_response(
                restApiId=self.id, resourceId=resource, httpMethod=http_method, **response
            )
        self.client.create_deployment(restApiId=self.id, stageName="prod")


@pytest.fixture
def api(aws: None) -> Api:
    return Api()


@pytest.fixture
def function() -> FakeFunction:
    return FakeFunction(result={"greeting": "hello"})


@pytest.fixture
def local_api(api: Api, function: FakeFunction) -> Iterator[LocalApi]:
    with LocalApi(invoke=function, api_key=API_KEY, port=free_port()) as served:
        yield served


def test_a_mock_integration_answers_the_response_its_status_code_selects(
    api: Api, local_api: LocalApi
) -> None:
    # Given a MOCK whose request template picks 404 for id "missing", 200 otherwise
    api.method(
        "items", "GET",
        {"type": "MOCK", "requestTemplates": {"application/json": (
            '#if($input.params("id") == "missing"){"statusCode": 404}#else{"statusCode": 200}#end'
        )}},
        [
            {"statusCode": "200", "responseTemplates": {"application/json": '{"id": "$input.params(\'id\')"}'},
             "responseParameters": {"method.response.header.X-Source": "'mock'"}},
            {"statusCode": "404", "selectionPattern": "404",
             "responseTemplates": {"application/json": '{"message": "no such item"}'}},
        ],
    )  # fmt: skip
    # When it is called with each id
    found, missing = call(local_api, "GET", "/items?id=i-1"), call(local_api, "GET", "/items?id=missing")
    # Then each gets its integration response's status, template and header
    assert (found.status, found.json(), found.headers["X-Source"]) == (200, {"id": "i-1"}, "mock")
    assert (missing.status, missing.json()) == (404, {"message": "no such item"})


def test_a_lambda_integration_without_proxy_maps_the_request_and_selects_errors_by_message(
    api: Api, local_api: LocalApi, function: FakeFunction
) -> None:
    # Given a non-proxy Lambda integration: the template builds the event, errors starting "Invalid" are 400
    arn = lambda_function()
    api.method(
        "greet", "POST",
        {"type": "AWS", "integrationHttpMethod": "POST",
         "uri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations",
         "requestTemplates": {"application/json": '{"name": $input.json(\'$.who\'), "agent": "$context.httpMethod"}'}},
        [{"statusCode": "200"},
         {"statusCode": "400", "selectionPattern": "Invalid.*",
          "responseTemplates": {"application/json": '{"error": "$util.escapeJavaScript($input.path(\'$.errorMessage\'))"}'}}],
    )  # fmt: skip
    # When it is called
    reply = call(
        local_api, "POST", "/greet", body=b'{"who": "Ada"}', headers=[("Content-Type", "application/json")]
    )
    # Then the function got the mapped event and its result is the body (the default response)
    assert function.event == {"name": "Ada", "agent": "POST"}
    assert (reply.status, reply.json()) == (200, {"greeting": "hello"})
    # And an error whose message matches the pattern becomes that response
    function.error = FunctionError("ValueError", 'Invalid name "x"')
    refused = call(local_api, "POST", "/greet", body=b'{"who": "x"}')
    assert (refused.status, refused.json()) == (400, {"error": 'Invalid name "x"'})


def test_a_content_type_without_a_template_is_refused_when_passthrough_is_never(
    api: Api, local_api: LocalApi
) -> None:
    api.method(
        "strict", "POST",
        {"type": "MOCK", "passthroughBehavior": "NEVER",
         "requestTemplates": {"application/json": '{"statusCode": 200}'}},
        [{"statusCode": "200"}],
    )  # fmt: skip
    refused = call(local_api, "POST", "/strict", body=b"a=1", headers=[("Content-Type", "text/plain")])
    assert (refused.status, refused.json()) == (415, {"message": "Unsupported Media Type"})
    assert (
        call(local_api, "POST", "/strict", body=b"{}", headers=[("Content-Type", "application/json")]).status
        == 200
    )


def test_an_integration_without_a_default_response_is_a_500(api: Api, local_api: LocalApi) -> None:
    api.method(
        "bare", "GET", {"type": "MOCK", "requestTemplates": {"application/json": '{"statusCode": 200}'}}
    )
    reply = call(local_api, "GET", "/bare")
    assert (reply.status, reply.json()) == (500, {"message": "Internal server error"})


class Backend(BaseHTTPRequestHandler):
    """An HTTP backend that echoes what it got."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {"path": self.path, "body": body.decode(), "x": self.headers.get("X-Trace")}
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", "echo")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_proxy_integration_passes_request_and_response_through(
    api: Api, local_api: LocalApi, backend: str
) -> None:
    api.method(
        "echo", "POST", {"type": "HTTP_PROXY", "integrationHttpMethod": "POST", "uri": f"{backend}/echo"}
    )
    reply = call(local_api, "POST", "/echo?q=1", body=b"raw", headers=[("X-Trace", "t-1")])
    assert (reply.status, reply.headers["X-Backend"]) == (201, "echo")
    assert reply.json() == {"path": "/echo?q=1", "body": "raw", "x": "t-1"}


def test_an_http_integration_maps_parameters_and_selects_by_status(
    api: Api, local_api: LocalApi, backend: str
) -> None:
    api.method(
        "orders", "POST",
        {"type": "HTTP", "integrationHttpMethod": "POST", "uri": f"{backend}/v2/orders",
         "requestParameters": {"integration.request.header.X-Trace": "method.request.header.X-Request",
                               "integration.request.querystring.source": "'api'"},
         "requestTemplates": {"application/json": '{"wrapped": $input.body}'}},
        [{"statusCode": "200"},
         {"statusCode": "202", "selectionPattern": "2\\d\\d",
          "responseParameters": {"method.response.header.X-Path": "integration.response.body.path"},
          "responseTemplates": {"application/json": '{"sent": $input.json(\'$.body\')}'}}],
    )  # fmt: skip
    reply = call(local_api, "POST", "/orders", body=b'{"n": 1}', headers=[("X-Request", "r-9")])
    assert (reply.status, reply.headers["X-Path"]) == (202, "/v2/orders?source=api")
    assert reply.json() == {"sent": '{"wrapped": {"n": 1}}'}


def test_templates_have_api_gateways_variables() -> None:
    text = render(
        "$util.urlEncode($input.body)|$input.json('$.items[1]')|#foreach($k in $input.path('$').keySet())$k,#end"
        "|$input.params('id')|$input.params().header.Host|$context.stage|$stageVariables.env",
        body='{"items": [1, {"a": "b"}]}',
        params={"path": {"id": "p-1"}, "querystring": {"id": "q-1"}, "header": {"Host": "h"}},
        context={"stage": "prod"}, stage_variables={"env": "local"},
    )  # fmt: skip
    assert (
        text
        == '%7B%22items%22%3A%20%5B1%2C%20%7B%22a%22%3A%20%22b%22%7D%5D%7D|{"a": "b"}|items,|p-1|h|prod|local'
    )
    assert select({"a": [{"b": 1}]}, "$.a[0]['b']") == 1 and select({}, "$.nothing.here") is None
