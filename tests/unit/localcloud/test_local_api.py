"""The local API against a REST API created in moto: API Gateway's proxy events, routing, auth and responses."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localcloud.apigateway.local_api import FunctionError, LocalApi
from localcloud.server import LocalCloudError, free_port

pytestmark = pytest.mark.unit

REGION = "us-east-1"
API_KEY = "local-api-key"
OK = {"statusCode": 200, "body": "ok"}
MISSING_TOKEN = {"message": "Missing Authentication Token"}


@dataclass
class FakeFunction:
    """The integrated function: records each event, answers a canned result or raises."""

    result: Any = field(default_factory=lambda: dict(OK))
    error: FunctionError | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((function, event))
        if self.error:
            raise self.error
        return self.result

    @property
    def event(self) -> dict[str, Any]:
        assert len(self.calls) == 1, f"expected one invocation, got {len(self.calls)}"
        return self.calls[0][1]


@dataclass
class RestApi:
    id: str
    function_arn: str
    resources: dict[str, str]  # path -> resource id


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def lambda_function() -> str:
    """A function in moto for the integration uri; the fake invoke stands in for running it."""
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="api-function",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    return boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="api-function",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]


def add_route(
    api_id: str,
    resource_id: str,
    method: str,
    function_arn: str,
    *,
    api_key_required: bool = False,
    authorization: str = "NONE",
    integration: str = "AWS_PROXY",
) -> None:
    apigateway = boto3.client("apigateway", region_name=REGION)
    apigateway.put_method(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=method,
        authorizationType=authorization,
        apiKeyRequired=api_key_required,
    )
    apigateway.put_integration(
        restApiId=api_id,
        resourceId=resource_id,
        httpMethod=method,
        type=integration,
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )


@pytest.fixture
def rest_api(aws: None) -> RestApi:
    """The orders API: literal, ``{id}`` and ``{proxy+}`` resources, an API key and an IAM method."""
    apigateway = boto3.client("apigateway", region_name=REGION)
    function_arn = lambda_function()
    api_id = apigateway.create_rest_api(name="orders-api")["id"]
    resources = {"/": apigateway.get_resources(restApiId=api_id)["items"][0]["id"]}
    for path in ("/orders", "/orders/{id}", "/orders/latest", "/files", "/files/{proxy+}", "/secure", "/iam"):
        parent, _, part = path.rpartition("/")
        resources[path] = apigateway.create_resource(
            restApiId=api_id, parentId=resources[parent or "/"], pathPart=part
        )["id"]
    for path, method in [
        ("/orders", "GET"),
        ("/orders", "POST"),
        ("/orders/{id}", "GET"),
        ("/orders/latest", "GET"),
        ("/files/{proxy+}", "ANY"),
    ]:
        add_route(api_id, resources[path], method, function_arn)
    add_route(api_id, resources["/secure"], "GET", function_arn, api_key_required=True)
    add_route(api_id, resources["/iam"], "GET", function_arn, authorization="AWS_IAM")
    apigateway.create_deployment(restApiId=api_id, stageName="prod", variables={"env": "local"})
    return RestApi(api_id, function_arn, resources)


@pytest.fixture
def function() -> FakeFunction:
    return FakeFunction()


@pytest.fixture
def local_api(rest_api: RestApi, function: FakeFunction) -> Iterator[LocalApi]:
    with LocalApi(invoke=function, api_key=API_KEY, port=free_port()) as api:
        yield api


def call(
    api: LocalApi, method: str, path: str, *, body: bytes = b"", headers: list[tuple[str, str]] | None = None
) -> Reply:
    """One request; http.client rather than urllib.request, which cannot repeat a header."""
    connection = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in headers or []:
            connection.putheader(name, value)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def test_get_event_carries_query_string_and_multi_value_headers(
    local_api: LocalApi, rest_api: RestApi, function: FakeFunction
) -> None:
    """REST API payload 1.0: last values in headers/queryStringParameters, all in the multiValue maps."""
    # Given a GET method on /orders

    # When it is called with a repeated query parameter and a repeated header
    reply = call(
        local_api,
        "GET",
        "/orders?status=open&tag=a&tag=b&empty=",
        headers=[("X-Tag", "a"), ("X-Tag", "b"), ("User-Agent", "unit-test")],
    )

    # Then the function gets API Gateway's event and its result is the response
    assert (reply.status, reply.body) == (200, b"ok")
    function_arn, event = function.calls[0]
    assert function_arn == rest_api.function_arn
    assert event["resource"] == event["path"] == "/orders"
    assert event["httpMethod"] == "GET"
    assert event["headers"]["X-Tag"] == "b"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert event["queryStringParameters"] == {"status": "open", "tag": "b", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"status": ["open"], "tag": ["a", "b"], "empty": [""]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] == {"env": "local"}
    assert (event["body"], event["isBase64Encoded"]) == (None, False)
    context = event["requestContext"]
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == rest_api.id
    assert context["resourceId"] == rest_api.resources["/orders"]
    assert context["resourcePath"] == "/orders"
    assert context["httpMethod"] == "GET"
    assert context["path"] == "/prod/orders"
    assert context["stage"] == "prod"
    assert context["protocol"] == "HTTP/1.1"
    assert context["requestId"] == reply.headers["x-amzn-RequestId"]
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["requestTime"])
    assert isinstance(context["requestTimeEpoch"], int)
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "unit-test"


def test_path_parameters_and_exact_parts_first(local_api: LocalApi, function: FakeFunction) -> None:
    """A ``{id}`` part yields a decoded path parameter; a literal sibling wins over it."""
    # Given /orders/{id} and /orders/latest

    # When both are called
    call(local_api, "GET", "/orders/o%2D42")
    call(local_api, "GET", "/orders/latest")

    # Then the parameter resource gets the id and the literal resource gets no parameters
    by_id, latest = (event for _, event in function.calls)
    assert (by_id["resource"], by_id["pathParameters"]) == ("/orders/{id}", {"id": "o-42"})
    assert (latest["resource"], latest["pathParameters"]) == ("/orders/latest", None)


def test_greedy_proxy_resource_with_any_method(local_api: LocalApi, function: FakeFunction) -> None:
    """``{proxy+}`` takes the rest of the path, and an ANY method takes every HTTP method."""
    # Given ANY on /files/{proxy+}

    # When a nested path is deleted
    reply = call(local_api, "DELETE", "/files/reports/2024/q1.csv")

    # Then the whole remainder is the proxy parameter
    assert reply.status == 200
    assert function.event["resource"] == "/files/{proxy+}"
    assert function.event["httpMethod"] == "DELETE"
    assert function.event["pathParameters"] == {"proxy": "reports/2024/q1.csv"}


def test_post_text_body_and_binary_body(local_api: LocalApi, function: FakeFunction) -> None:
    """Text bodies are passed as is; binary ones base64-encoded with isBase64Encoded."""
    # Given POST on /orders
    binary = bytes(range(256))

    # When a JSON body and then a binary body are posted
    call(
        local_api,
        "POST",
        "/orders",
        body=b'{"sku": "SKU-RED-MUG"}',
        headers=[("Content-Type", "application/json")],
    )
    call(local_api, "POST", "/orders", body=binary, headers=[("Content-Type", "application/octet-stream")])

    # Then the first arrives as text and the second as base64
    text, raw = (event for _, event in function.calls)
    assert (text["body"], text["isBase64Encoded"]) == ('{"sku": "SKU-RED-MUG"}', False)
    assert raw["isBase64Encoded"] is True
    assert base64.b64decode(raw["body"]) == binary


def test_stage_prefixed_invoke_url(local_api: LocalApi, function: FakeFunction) -> None:
    """The invoke URL's ``/{stage}`` prefix selects the stage and is not part of the event's path."""
    # Given the API deployed to stage prod

    # When it is called through the stage's invoke URL
    reply = call(local_api, "GET", "/prod/orders/7")

    # Then the stage is stripped from path but kept in requestContext.path
    assert reply.status == 200
    assert function.event["path"] == "/orders/7"
    assert function.event["requestContext"]["path"] == "/prod/orders/7"
    assert function.event["requestContext"]["stage"] == "prod"


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("PUT", "/orders"), ("GET", "/")])
def test_unknown_route_is_missing_authentication_token(
    local_api: LocalApi, function: FakeFunction, method: str, path: str
) -> None:
    """An unknown resource or method answers API Gateway's 403 Missing Authentication Token."""
    # Given no such resource or method

    # When it is called
    reply = call(local_api, method, path)

    # Then API Gateway's own 403 comes back and the function is not invoked
    assert reply.status == 403
    assert reply.json() == MISSING_TOKEN
    assert reply.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert reply.headers["x-amzn-RequestId"]
    assert function.calls == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW", "QUERY"])
@pytest.mark.parametrize("path", ["/files/report.csv", "/orders", "/nowhere"])
def test_a_method_api_gateway_does_not_route_is_missing_authentication_token(
    local_api: LocalApi, function: FakeFunction, method: str, path: str
) -> None:
    """The defect this guards: TRACE (or any method without a ``do_`` handler) got the HTTP server's
    HTML 501 page; API Gateway routes only DELETE GET HEAD OPTIONS PATCH POST PUT (ANY is those),
    and answers any other method with its JSON 403, even on an ANY resource."""
    # Given ANY on /files/{proxy+}, GET and POST on /orders

    # When a method API Gateway does not route is called
    reply = call(local_api, method, path)

    # Then API Gateway's own 403 comes back as JSON and the function is not invoked
    assert reply.status == 403
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == MISSING_TOKEN
    assert reply.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert function.calls == []


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_api_key_missing_or_wrong_is_forbidden(
    local_api: LocalApi, function: FakeFunction, key: str | None
) -> None:
    """apiKeyRequired without a valid x-api-key answers 403 Forbidden."""
    # Given a method that requires an API key

    # When it is called without the right key
    reply = call(local_api, "GET", "/secure", headers=[("x-api-key", key)] if key else [])

    # Then it is forbidden and the function is not invoked
    assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})
    assert function.calls == []


def test_api_key_right_reaches_function(local_api: LocalApi, function: FakeFunction) -> None:
    """apiKeyRequired with the right x-api-key invokes the function and names the key in the identity."""
    # Given a method that requires an API key

    # When it is called with the local key
    reply = call(local_api, "GET", "/secure", headers=[("x-api-key", API_KEY)])

    # Then the function runs and sees the key
    assert reply.status == 200
    assert function.event["requestContext"]["identity"]["apiKey"] == API_KEY


def test_aws_iam_method_needs_a_sigv4_signature(local_api: LocalApi, function: FakeFunction) -> None:
    """AWS_IAM: unsigned requests get 403 Missing Authentication Token; signed ones carry the access key."""
    # Given an AWS_IAM method and a request signed with the local credentials
    signed = AWSRequest(method="GET", url=f"{local_api.url}/iam")
    SigV4Auth(Credentials("localcloud", "localcloud"), "execute-api", REGION).add_auth(signed)

    # When it is called unsigned and signed
    unsigned_reply = call(local_api, "GET", "/iam")
    signed_reply = call(
        local_api, "GET", "/iam", headers=[(k, v) for k, v in signed.headers.items() if k != "host"]
    )

    # Then only the signed call reaches the function, as the local access key
    assert (unsigned_reply.status, unsigned_reply.json()) == (403, MISSING_TOKEN)
    assert signed_reply.status == 200
    identity = function.event["requestContext"]["identity"]
    assert identity["accessKey"] == "localcloud"
    assert identity["accountId"] == "123456789012"


def test_function_error_is_502(local_api: LocalApi, function: FakeFunction) -> None:
    """An unhandled function error answers 502 Internal server error."""
    # Given a function that fails
    function.error = FunctionError("KeyError", "'sku'")

    # When it is called
    reply = call(local_api, "GET", "/orders")

    # Then API Gateway's 502 comes back
    assert (reply.status, reply.json()) == (502, {"message": "Internal server error"})
    assert reply.headers["x-amzn-ErrorType"] == "InternalServerErrorException"


@pytest.mark.parametrize(
    "result",
    [
        None,
        "ok",
        {"body": "no status"},
        {"statusCode": "200", "body": "string status"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "ok", "unexpected": True},
    ],
)
def test_malformed_proxy_result_is_502(local_api: LocalApi, function: FakeFunction, result: Any) -> None:
    """A malformed Lambda proxy response answers 502 Internal server error."""
    # Given a function whose result is not a valid proxy response
    function.result = result

    # When it is called
    reply = call(local_api, "GET", "/orders")

    # Then API Gateway's 502 comes back
    assert (reply.status, reply.json()) == (502, {"message": "Internal server error"})


def test_response_headers_merge_and_base64_body_decodes(local_api: LocalApi, function: FakeFunction) -> None:
    """headers and multiValueHeaders merge (multiValueHeaders wins) and isBase64Encoded bodies are decoded."""
    # Given a function answering with both header maps and a base64 body
    function.result = {
        "statusCode": 201,
        "headers": {"X-One": "1", "Set-Cookie": "dropped=1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x00\xffpng").decode(),
        "isBase64Encoded": True,
    }

    # When it is called
    reply = call(local_api, "GET", "/orders")

    # Then the response carries every header value and the decoded bytes
    assert reply.status == 201
    assert reply.headers["X-One"] == "1"
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["x-amzn-RequestId"]
    assert reply.body == b"\x00\xffpng"


def test_redeployed_routes_are_served_without_restart(
    local_api: LocalApi, rest_api: RestApi, function: FakeFunction
) -> None:
    """The REST API is read on every request, as a new deployment is picked up by API Gateway."""
    # Given a running local API and a resource added afterwards
    apigateway = boto3.client("apigateway", region_name=REGION)
    resource_id = apigateway.create_resource(
        restApiId=rest_api.id, parentId=rest_api.resources["/"], pathPart="new"
    )["id"]
    add_route(rest_api.id, resource_id, "GET", rest_api.function_arn)
    apigateway.create_deployment(restApiId=rest_api.id, stageName="prod")

    # When the new path is called
    reply = call(local_api, "GET", "/new")

    # Then it is served
    assert reply.status == 200
    assert function.event["resource"] == "/new"


def test_a_proxy_integration_without_a_function_uri_is_500(local_api: LocalApi, rest_api: RestApi) -> None:
    """An AWS_PROXY integration must name a Lambda function's invocation URI."""
    # Given a proxy method whose URI names its function by a stage variable the stage does not set
    apigateway = boto3.client("apigateway", region_name=REGION)
    resource_id = apigateway.create_resource(
        restApiId=rest_api.id, parentId=rest_api.resources["/"], pathPart="legacy"
    )["id"]
    apigateway.put_method(
        restApiId=rest_api.id, resourceId=resource_id, httpMethod="GET", authorizationType="NONE"
    )
    apigateway.put_integration(
        restApiId=rest_api.id, resourceId=resource_id, httpMethod="GET", type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/${{stageVariables.fn}}/invocations",
    )  # fmt: skip

    # When it is called
    reply = call(local_api, "GET", "/legacy")

    # Then the local API explains what the integration lacks
    assert reply.status == 500
    assert "Lambda function's invocation URI" in reply.json()["message"]


def test_body_over_10_mb_is_413(local_api: LocalApi, function: FakeFunction) -> None:
    """API Gateway's 10 MB payload limit answers 413."""
    # Given a body one byte over 10 MB
    body = b"x" * (10 * 1024 * 1024 + 1)

    # When it is posted
    reply = call(local_api, "POST", "/orders", body=body)

    # Then it is refused before the function
    assert (reply.status, reply.json()) == (413, {"message": "Request Too Long"})
    assert function.calls == []


def test_several_rest_apis_need_an_api_id(local_api: LocalApi, rest_api: RestApi) -> None:
    """With more than one REST API the local API cannot guess: it answers 500 naming their ids."""
    # Given a second REST API
    other = boto3.client("apigateway", region_name=REGION).create_rest_api(name="other")["id"]

    # When the local API is called
    reply = call(local_api, "GET", "/orders")

    # Then the message lists both ids
    assert reply.status == 500
    assert rest_api.id in reply.json()["message"]
    assert other in reply.json()["message"]


def test_port_in_use_is_a_local_cloud_error(local_api: LocalApi, function: FakeFunction) -> None:
    """A busy port is reported as one line naming it."""
    # Given a local API already on a port

    # When another one starts on the same port
    with pytest.raises(LocalCloudError, match=f"port {local_api.port}"):
        LocalApi(invoke=function, api_key=None, port=local_api.port).start()

    # Then the error names the port (asserted above)


def second_api(function_arn: str) -> str:
    """Another REST API with GET /ping on stage dev."""
    apigateway = boto3.client("apigateway", region_name=REGION)
    api_id = apigateway.create_rest_api(name="ping-api")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    ping = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="ping")["id"]
    add_route(api_id, ping, "GET", function_arn)
    apigateway.create_deployment(restApiId=api_id, stageName="dev")
    return api_id


def test_every_rest_api_is_served_at_its_localstack_path(
    local_api: LocalApi, rest_api: RestApi, function: FakeFunction
) -> None:
    # Given a second REST API beside the orders API (so neither is the root's)
    other = second_api(rest_api.function_arn)
    # When each is called at /restapis/{api_id}/{stage}/_user_request_/{path}
    orders = call(local_api, "GET", f"/restapis/{rest_api.id}/prod/_user_request_/orders?status=open")
    ping = call(local_api, "GET", f"/restapis/{other}/dev/_user_request_/ping")
    # Then each reaches its own API and stage, with the path as the API sees it
    assert (orders.status, ping.status) == (200, 200)
    first, second = (event for _, event in function.calls)
    assert (first["requestContext"]["apiId"], first["requestContext"]["stage"], first["path"]) == (
        rest_api.id, "prod", "/orders",
    )  # fmt: skip
    assert first["queryStringParameters"] == {"status": "open"}
    assert (second["requestContext"]["apiId"], second["requestContext"]["stage"], second["path"]) == (
        other, "dev", "/ping",
    )  # fmt: skip
    assert second["requestContext"]["path"] == "/dev/ping"
    # And an API or a stage that does not exist is a 404 naming it
    missing_api = call(local_api, "GET", "/restapis/nope123/prod/_user_request_/orders")
    missing_stage = call(local_api, "GET", f"/restapis/{rest_api.id}/staging/_user_request_/orders")
    assert (missing_api.status, missing_stage.status) == (404, 404)
    assert "nope123" in missing_api.json()["message"]
    assert "staging" in missing_stage.json()["message"]


def test_the_root_serves_the_api_an_extension_names_when_there_are_several(
    rest_api: RestApi, function: FakeFunction
) -> None:
    # Given two REST APIs and a chooser (an extension) that names the second one
    other = second_api(rest_api.function_arn)
    with LocalApi(invoke=function, api_key=API_KEY, port=free_port(), root_api=lambda: other) as api:
        # When the root is called
        reply = call(api, "GET", "/dev/ping")
        # Then the named API answers
        assert reply.status == 200
        assert function.event["requestContext"]["apiId"] == other


def test_an_explicit_api_id_wins_at_the_root(rest_api: RestApi, function: FakeFunction) -> None:
    # Given two REST APIs, a chooser naming the second and --api-id naming the first
    other = second_api(rest_api.function_arn)
    with LocalApi(
        invoke=function, api_key=API_KEY, port=free_port(), api_id=rest_api.id, root_api=lambda: other
    ) as api:
        # When the root is called
        reply = call(api, "GET", "/prod/orders")
        # Then the API given explicitly answers
        assert reply.status == 200
        assert function.event["requestContext"]["apiId"] == rest_api.id
