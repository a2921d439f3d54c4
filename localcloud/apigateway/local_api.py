"""The local API: the deployed REST APIs served over HTTP (HTTP APIs, API Gateway v2, are served
beside them by ``http_api``).

Requests become API Gateway REST API (v1) proxy events (payload format 1.0), the integrated
function is invoked, and its result becomes the HTTP response, as API Gateway does. The other
integrations (MOCK, AWS services, Lambda without proxy, HTTP, HTTP_PROXY) run with their mapping
templates and integration responses (``integrations``). The REST
APIs are read from moto's in-process backend on every request, so a redeploy needs no restart.
A resource or method that is not defined answers API Gateway's 403 ``{"message": "Missing
Authentication Token"}``, and so does any method a REST API does not route (ANY is DELETE, GET,
HEAD, OPTIONS, PATCH, POST and PUT): TRACE, CONNECT or a made-up one.

Every REST and HTTP API is served at ``/restapis/{api_id}/{stage}/_user_request_/{path}`` (LocalStack's
form; an HTTP API's default stage is ``$default``). One of them is also served at the root, as ``/{stage}/{path}`` (its invoke URL) and as
``/{path}`` (its first stage): the one given as ``api_id``, else the only one deployed, else the
one ``root_api`` names (an extension's choice). At the root a first path part naming a stage is
always taken as the stage; with several REST APIs and none chosen, a root request answers 500
listing their ids.

Where it differs from API Gateway:

- Resources and methods are read live: changes apply without a new deployment.
- ``AWS_IAM`` methods need a SigV4 ``Authorization`` header whose credential is the local access
  key id; the signature is not verified. The identity in the event is made up from that key.
- ``apiKeyRequired`` methods accept the local API key or any enabled key in moto, without usage
  plans, quotas or throttling. Custom and Cognito authorizers, request validation and
  gateway-response customisation are not implemented.
- VPC links and integration caching are not run.
- Request bodies that are not UTF-8 are passed base64-encoded even if ``binaryMediaTypes`` does
  not list their type; a result with ``isBase64Encoded`` is always decoded (API Gateway decodes
  only when the request's ``Accept`` matches ``binaryMediaTypes``).
- The 29 s integration timeout is not enforced: the invoke callable enforces the function's own
  timeout, and a timed-out function answers 502 instead of 504.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from moto.apigateway.models import Method, Resource, RestAPI, Stage, apigateway_backends

from localcloud.apigateway.integrations import IntegrationError, Integrations, MethodRequest
from localcloud.apigateway.templates import with_stage_variables
from localcloud.server import LocalCloudError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_LINE_BYTES = 4096  # a chunk-size line or a trailer
MAX_TRAILERS = 100
# Hex digits, then chunk extensions after ";" (ignored). No sign, prefix or space: anything looser
# is read differently by another parser on the way and lets a request hide in a body.
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\r\n]*)?\r?\n")
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
LAMBDA_URI = re.compile(
    r"^arn:aws[\w-]*:apigateway:[\w-]+:lambda:path/2015-03-31/functions/(?P<function>[^/]+)/invocations$"
)
# LocalStack's path for any REST API: /restapis/{api_id}/{stage}/_user_request_/{path}
USER_REQUEST = re.compile(r"^/restapis/(?P<api>[^/]+)/(?P<stage>[^/]+)/_user_request_(?P<path>/.*)?$")
# A function URL: https://{url-id}.lambda-url.{region}.on.aws/{path}, served as /lambda-url/{url-id}/{path}
# (or with that Host header).
FUNCTION_URL_PATH = re.compile(r"^/lambda-url/(?P<id>[0-9a-z]+)(?P<path>/.*)?$")
FUNCTION_URL_HOST = re.compile(r"^(?P<id>[0-9a-z]+)\.lambda-url\.")
SIGV4_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/")
# The methods a REST API routes (ANY is these); any other method is answered 403 Missing
# Authentication Token, as for a method the resource does not define.
ROUTED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Response headers API Gateway renames rather than passes, because it sets them itself.
REMAPPED_HEADERS = frozenset({"connection", "content-length", "date", "server", "transfer-encoding"})
NULL_IDENTITY = dict.fromkeys(
    ("cognitoIdentityPoolId", "accountId", "cognitoIdentityId", "caller", "principalOrgId", "accessKey",
     "cognitoAuthenticationType", "cognitoAuthenticationProvider", "userArn", "user"),
)  # fmt: skip


class FunctionError(Exception):
    """The function raised (or timed out): API Gateway answers 502."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class BodyTooLarge(Exception):
    """Past the 10 MB limit before the rest was read: the connection cannot be used again."""


class GatewayError(Exception):
    """A response API Gateway produces itself, without the integration's say."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message

    def response(self) -> Response:
        return Response(
            self.status,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", self.error_type)],
            json.dumps({"message": self.message}).encode(),
        )


def _missing_token() -> GatewayError:
    return GatewayError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def _internal_error() -> GatewayError:
    return GatewayError(502, "InternalServerErrorException", "Internal server error")


@dataclass
class Request:
    method: str
    target: str  # path and query string as received
    headers: list[tuple[str, str]]
    body: bytes | None  # None: over the 10 MB limit, not kept
    source_ip: str

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Route:
    stage: str
    stage_variables: dict[str, str] | None
    deployment_id: str | None
    path: str  # without the stage prefix, decoded
    resource: Resource
    method: Method
    path_parameters: dict[str, str]


class LocalApi:
    """An HTTP server on ``host:port`` in front of the REST API deployed to moto."""

    def __init__(
        self,
        *,
        invoke: Callable[[str, dict[str, Any]], Any],
        api_key: str | None,
        port: int = 3000,
        access_key_id: str = "localcloud",
        account_id: str = "123456789012",
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        api_id: str | None = None,
        root_api: Callable[[], str | None] | None = None,
        endpoint: str | None = None,
        may_invoke: Callable[[str, str], bool] | None = None,
        role_credentials: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        """``api_id``: the REST API served at the root; ``root_api``: asked for one on each root
        request when there are several and ``api_id`` is None; ``endpoint``: where AWS service
        integrations are called; ``may_invoke(function, source ARN)``: whether the function's
        permissions let API Gateway invoke it for this method (AWS answers 500 when not);
        ``role_credentials(role ARN)``: the credentials an AWS integration's role calls with."""
        self.invoke = invoke
        self.may_invoke = may_invoke
        self.integrations = Integrations(
            invoke=invoke, function_error=FunctionError, endpoint=endpoint, region=region,
            access_key_id=access_key_id, may_invoke=may_invoke, role_credentials=role_credentials,
        )  # fmt: skip
        self.root_api = root_api
        self.api_key = api_key
        self.access_key_id = access_key_id
        self.account_id = account_id
        self.region = region
        self.host = host
        self.port = port
        self.api_id = api_id
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        try:
            server = _HttpServer((self.host, self.port), _Handler)
        except OSError as error:
            raise LocalCloudError(
                f"port {self.port} on {self.host} is in use ({error.strerror}): "
                "stop what runs there or pick another port for the local API"
            ) from error
        server.api = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="local-api", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, request: Request) -> Response:
        """One request through API Gateway: route, authorise, invoke, map the result."""
        request_id = str(uuid.uuid4())
        try:
            response = self._proxy(request, request_id)
        except GatewayError as error:
            response = error.response()
        except Exception:  # the caller still gets an HTTP answer
            log.exception("local API failed on %s %s", request.method, request.target)
            response = GatewayError(500, "InternalServerErrorException", "Internal server error").response()
        response.headers.append(("x-amzn-RequestId", request_id))
        return response

    def _proxy(self, request: Request, request_id: str) -> Response:
        if request.body is None:
            raise GatewayError(413, "RequestTooLongException", "Request Too Long")
        path = urlsplit(request.target).path
        function_url = FUNCTION_URL_PATH.match(path) or FUNCTION_URL_HOST.match(request.header("Host") or "")
        if function_url is not None:
            return self._function_url(
                function_url["id"], request, function_url.groupdict().get("path"), request_id
            )
        addressed = USER_REQUEST.match(path)
        api_id = unquote(addressed["api"]) if addressed else self._root_api_id()
        stage = unquote(addressed["stage"]) if addressed else None
        path = (addressed["path"] or "/") if addressed else path
        http = http_api.http_apis(self.account_id, self.region).get(api_id)
        if http is not None:
            return self._http_api(http, request, path, stage, request_id)
        api = self._addressed_api(api_id)
        route = _route(api, request.method, path, stage=stage)
        identity = {
            **NULL_IDENTITY,
            "sourceIp": request.source_ip,
            "userAgent": request.header("User-Agent"),
            **self._authorise(route.method, request),
        }
        integration = route.method.method_integration
        if integration is not None and integration.integration_type != "AWS_PROXY":
            return self._integration(api, route, request, identity, request_id)
        function = self._function(route)
        event = self._event(api, route, request, identity, request_id)
        self._permitted(function, event)
        try:
            result = self.invoke(function, event)
        except FunctionError as error:
            log.warning("Lambda function %s failed: %s", function, error)
            raise _internal_error() from error
        return _response(result, function)

    def _integration(
        self, api: RestAPI, route: Route, request: Request, identity: dict[str, Any], request_id: str
    ) -> Response:
        """A method whose integration is not a Lambda proxy: its templates and integration responses."""
        event = self._event(api, route, request, identity, request_id)
        method_request = MethodRequest(
            http_method=request.method, body=(request.body or b"").decode("utf-8", "replace"),
            headers=event["headers"] or {}, query=event["queryStringParameters"] or {},
            path_parameters=route.path_parameters, context=event["requestContext"],
            stage_variables=route.stage_variables or {},
            source_arn=execute_api_arn(event, self.account_id, self.region),
        )  # fmt: skip
        try:
            result = self.integrations.run(route.method.method_integration, method_request)
        except IntegrationError as error:
            log.warning("%s %s: %s", request.method, route.resource.get_path(), error.message)
            message = (
                error.message if error.status < 500 else "Internal server error"
            )  # details stay in the log
            raise GatewayError(error.status, error.error_type, message) from error
        return Response(result.status, result.headers, result.body)

    def _addressed_api(self, api_id: str) -> RestAPI:
        api = apigateway_backends[self.account_id][self.region].apis.get(api_id)
        if api is None:
            raise GatewayError(404, "NotFoundException", f"no REST API {api_id} is deployed")
        return api

    def _root_api_id(self) -> str:
        """The API (REST or HTTP) served at the root."""
        apis = sorted(apigateway_backends[self.account_id][self.region].apis) + sorted(
            http_api.http_apis(self.account_id, self.region)
        )
        if self.api_id is not None:
            if self.api_id in apis:
                return self.api_id
            raise GatewayError(
                500, "InternalServerErrorException", f"API {self.api_id} not found; APIs: {apis}"
            )
        if len(apis) == 1:
            return apis[0]
        chosen = self.root_api() if self.root_api is not None and apis else None
        if chosen in apis:
            return chosen
        message = (
            f"{len(apis)} APIs are deployed ({', '.join(apis)}): call one at "
            "/restapis/{api_id}/{stage}/_user_request_/{path}, or serve one at the root (--api-id)"
            if apis
            else "no REST or HTTP API is deployed"
        )
        raise GatewayError(500, "InternalServerErrorException", message)

    def _function_url(self, url_id: str, request: Request, path: str | None, request_id: str) -> Response:
        """A request to a function URL: a payload 2.0 event with the ``$default`` route key."""
        from moto.awslambda.models import lambda_backends

        functions = lambda_backends[self.account_id][self.region]._lambdas.all()
        function = next(
            (f for f in functions if f.url_config is not None and f"//{url_id}." in f.url_config.url), None
        )
        if function is None:
            raise GatewayError(404, "ResourceNotFoundException", f"no function URL {url_id}")
        if (function.url_config.config if function.url_config else {}).get(
            "AuthType"
        ) == "AWS_IAM" and not SIGV4_CREDENTIAL.match(request.header("Authorization") or ""):
            raise GatewayError(403, "AccessDeniedException", "Forbidden")
        if path is None:  # addressed by its Host header: the whole path is the function's
            path = urlsplit(request.target).path
        event = http_api.event(
            http_api.UrlApi(url_id), "$default", path, http_api.HttpRoute(http_api.DEFAULT_ROUTE, {}), request,
            version="2.0", account_id=self.account_id, request_id=request_id, port=self.port,
        )  # fmt: skip
        try:
            result = self.invoke(function.function_arn, event)
        except FunctionError as error:
            log.warning("Lambda function %s failed: %s", function.function_name, error)
            raise _internal_error() from error
        return http_api.response(result, function.function_name, version="2.0")

    def _http_api(
        self, api: Any, request: Request, path: str, stage: str | None, request_id: str
    ) -> Response:
        """A request to an HTTP API (API Gateway v2)."""
        stage, path = http_api.stage_and_path(api, path, stage)
        route = http_api.select_route(api, request.method, path)
        function, version = http_api.function_of(api, route)
        event = http_api.event(
            api, stage, path, route, request, version=version, account_id=self.account_id,
            request_id=request_id, port=self.port,
        )  # fmt: skip
        self._permitted(function, event)
        try:
            result = self.invoke(function, event)
        except FunctionError as error:
            log.warning("Lambda function %s failed: %s", function, error)
            raise _internal_error() from error
        return http_api.response(result, function, version=version)

    def _permitted(self, function: str, event: dict[str, Any]) -> None:
        if self.may_invoke is not None and not self.may_invoke(
            function, execute_api_arn(event, self.account_id, self.region)
        ):
            log.warning(
                "Execution failed due to configuration error: Invalid permissions on Lambda function %s",
                function,
            )
            raise GatewayError(500, "InternalServerErrorException", "Internal server error")

    def _authorise(self, method: Method, request: Request) -> dict[str, Any]:
        """The identity fields the authorisation adds; raises API Gateway's 403s."""
        identity: dict[str, Any] = {}
        if method.authorization_type == "AWS_IAM":
            authorization = request.header("Authorization")
            if not authorization:
                raise _missing_token()
            credential = SIGV4_CREDENTIAL.match(authorization)
            if credential is None:
                raise GatewayError(
                    403,
                    "IncompleteSignatureException",
                    "Authorization header requires 'Credential' parameter.",
                )
            if credential["key"] != self.access_key_id:
                raise GatewayError(
                    403,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            identity |= {
                "accessKey": self.access_key_id,
                "accountId": self.account_id,
                "caller": self.access_key_id,
                "user": self.access_key_id,
                "userArn": f"arn:aws:iam::{self.account_id}:user/{self.access_key_id}",
            }
        if method.api_key_required:
            value = request.header("x-api-key")
            keys = {key.value: key.id for key in list(apigateway_backends[self.account_id][self.region].keys.values())
                    if key.enabled}  # fmt: skip
            if value is None or (value != self.api_key and value not in keys):
                raise GatewayError(403, "ForbiddenException", "Forbidden")
            identity |= {"apiKey": value, "apiKeyId": keys.get(value)}
        return identity

    def _function(self, route: Route) -> str:
        integration = route.method.method_integration
        uri = with_stage_variables((integration.uri if integration else "") or "", route.stage_variables)
        match = LAMBDA_URI.match(uri) if integration and integration.integration_type == "AWS_PROXY" else None
        if match is None:
            kind = integration.integration_type if integration else "no"
            raise GatewayError(
                500,
                "InternalServerErrorException",
                f"{route.method.http_method} {route.resource.get_path()} has {kind} integration ({uri or 'no uri'}): "
                "a Lambda proxy integration (AWS_PROXY) needs a Lambda function's invocation URI",
            )
        return match["function"]

    def _event(
        self, api: RestAPI, route: Route, request: Request, identity: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        headers = _multi(request.headers)
        forwarded = [("X-Forwarded-For", request.source_ip), ("X-Forwarded-Port", str(self.port)),
                     ("X-Forwarded-Proto", "http")]  # fmt: skip
        for name, value in forwarded:
            if not any(key.lower() == name.lower() for key in headers):
                headers[name] = [value]
        params = _multi(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))
        body, binary = _body(request.body or b"", request.header("Content-Type"), api.binaryMediaTypes)
        now = datetime.now(UTC)
        domain = request.header("Host") or f"{self.host}:{self.port}"
        resource_path = route.resource.get_path()
        return {
            "resource": resource_path,
            "path": route.path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in headers.items()} or None,
            "multiValueHeaders": headers or None,
            "queryStringParameters": {name: values[-1] for name, values in params.items()} or None,
            "multiValueQueryStringParameters": params or None,
            "pathParameters": route.path_parameters or None,
            "stageVariables": route.stage_variables or None,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": api.id,
                "resourceId": route.resource.id,
                "resourcePath": resource_path,
                "httpMethod": request.method,
                "path": f"/{route.stage}{route.path}",
                "stage": route.stage,
                "deploymentId": route.deployment_id,
                "requestId": request_id,
                "extendedRequestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "protocol": "HTTP/1.1",
                "domainName": domain,
                "domainPrefix": domain.split(":")[0].split(".")[0],
                "identity": identity,
            },
            "body": body,
            "isBase64Encoded": binary,
        }


def execute_api_arn(event: dict[str, Any], account: str, region: str) -> str:
    """The ARN API Gateway invokes a function for (``aws:SourceArn`` of its Lambda permission check):
    ``<api>/<stage>/<METHOD>/<path>``, from a proxy event of either payload version."""
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    method = http.get("method") or event.get("httpMethod") or "GET"
    path = event.get("rawPath") if http else event.get("path")
    return f"arn:aws:execute-api:{region}:{account}:{context.get('apiId')}/{context.get('stage')}/{method}{path or '/'}"


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _body(raw: bytes, content_type: str | None, binary_types: list[str]) -> tuple[str | None, bool]:
    """The event's body: text as is, binary media types and non-UTF-8 bytes base64-encoded."""
    if not raw:
        return None, False
    media_type = (content_type or "").split(";")[0].strip().lower()
    if not any(fnmatch(media_type, pattern.replace("~1", "/").lower()) for pattern in binary_types):
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(raw).decode(), True


def _route(api: RestAPI, http_method: str, raw_path: str, stage: str | None = None) -> Route:
    """The stage, resource and method a path selects, matched the way API Gateway matches.
    ``stage``: given apart from the path (LocalStack's form), else the path's first part if it
    names one, else the API's first stage."""
    stages: dict[str, Stage] = dict(api.stages)
    parts = [part for part in raw_path.split("/") if part]
    if stage is not None:
        if stage not in stages and stage not in {d.stage_name for d in list(api.deployments.values())}:
            raise GatewayError(404, "NotFoundException", f"REST API {api.id} has no stage {stage}")
        stage_name = stage
    elif parts and unquote(parts[0]) in stages:
        first = parts.pop(0)
        stage_name, raw_path = unquote(first), raw_path.lstrip("/")[len(first) :]
    else:
        deployments = [d.stage_name for d in list(api.deployments.values()) if d.stage_name]
        stage_name = next(iter(stages), None) or next(iter(deployments), "prod")
    found = stages.get(stage_name)
    children: dict[str | None, list[Resource]] = {}
    for resource in list(api.resources.values()):
        children.setdefault(resource.parent_id, []).append(resource)
    matched = _match(children, api.resources[api.root_resource_id], parts)
    if matched is None:
        raise _missing_token()
    resource, parameters = matched
    methods = dict(resource.resource_methods)
    method = (methods.get(http_method) or methods.get("ANY")) if http_method in ROUTED_METHODS else None
    if method is None:
        raise _missing_token()
    return Route(
        stage=stage_name,
        stage_variables=dict(found.variables) if found and found.variables else None,
        deployment_id=found.deployment_id if found else None,
        path=unquote(raw_path or "/"),
        resource=resource,
        method=method,
        path_parameters=parameters,
    )


def _match(
    children: dict[str | None, list[Resource]], resource: Resource, parts: list[str]
) -> tuple[Resource, dict[str, str]] | None:
    """Exact path parts first, then ``{param}`` parts, then a greedy ``{proxy+}``."""
    if not parts:
        return resource, {}

    def rank(child: Resource) -> int:
        return 2 if child.path_part.endswith("+}") else 1 if child.path_part.startswith("{") else 0

    for child in sorted(children.get(resource.id, []), key=rank):
        part = child.path_part
        if part.endswith("+}"):
            return child, {part[1:-2]: unquote("/".join(parts))}
        if part.startswith("{") or part == unquote(parts[0]):
            matched = _match(children, child, parts[1:])
            if matched is not None:
                if part.startswith("{"):
                    matched[1][part[1:-1]] = unquote(parts[0])
                return matched
    return None


def _response(result: Any, function: str) -> Response:
    """The HTTP response for a proxy result; anything API Gateway calls malformed answers 502."""
    try:
        if not isinstance(result, dict) or set(result) - RESULT_KEYS:
            raise ValueError(
                "not an object with only statusCode, headers, multiValueHeaders, body, isBase64Encoded"
            )
        status, body = result.get("statusCode"), result.get("body")
        headers, multi = result.get("headers") or {}, result.get("multiValueHeaders") or {}
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"statusCode {status!r} is not an HTTP status code")
        if not isinstance(body, str | None) or not isinstance(headers, dict) or not isinstance(multi, dict):
            raise ValueError("body must be a string, headers and multiValueHeaders objects")
        raw = (
            base64.b64decode(body or "", validate=True)
            if result.get("isBase64Encoded")
            else (body or "").encode()
        )
        # Both given: merged, and multiValueHeaders wins for a name in both.
        merged = {name.lower(): (name, [str(value)]) for name, value in headers.items()}
        for name, values in multi.items():
            merged[name.lower()] = (
                name,
                [str(value) for value in (values if isinstance(values, list) else [values])],
            )
    except (ValueError, TypeError) as error:
        log.warning("Malformed Lambda proxy response from %s: %s", function, error)
        raise _internal_error() from error
    merged.setdefault("content-type", ("Content-Type", ["application/json"]))
    return Response(
        status,
        [
            (f"X-Amzn-Remapped-{name}" if key in REMAPPED_HEADERS else name, " ".join(value.splitlines()))
            for key, (name, values) in merged.items()
            for value in values
        ],
        raw,
    )


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    api: LocalApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped
    server: _HttpServer

    def _serve(self) -> None:
        body: bytes | None
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "Bad request body framing")  # and closes: the framing is not to be trusted
            return
        except BodyTooLarge:
            body, self.close_connection = None, True  # answered 413; the rest of the body is never read
        request = Request(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        response = self.server.api.handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Any:
        """``do_<METHOD>`` for every method (TRACE, CONNECT, made-up ones): API Gateway answers them all,
        where ``BaseHTTPRequestHandler`` would answer an HTML 501 for a method it has no ``do_`` for."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        """The whole body, or None past 10 MB. A Content-Length body is read to its end anyway, to
        keep the connection usable; a chunked one raises BodyTooLarge before the chunk past it."""
        kept: list[bytes] = []
        size = 0
        for chunk in _body_chunks(self.rfile, self.headers):
            size += len(chunk)
            if size <= MAX_BODY_BYTES:
                kept.append(chunk)
        return b"".join(kept) if size <= MAX_BODY_BYTES else None

    def version_string(self) -> str:
        return "localcloud-api"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def _body_chunks(stream: BufferedIOBase, headers: Any) -> Iterator[bytes]:
    """The body in pieces of at most 64 KiB; ValueError for framing that cannot be trusted."""
    encoding = headers.get_all("Transfer-Encoding")
    lengths = headers.get_all("Content-Length")
    if encoding:
        if lengths or len(encoding) > 1 or encoding[0].strip().lower() != "chunked":
            raise ValueError(f"unsupported Transfer-Encoding {encoding} (with Content-Length {lengths})")
        yield from _chunked(stream)
        return
    if lengths and (len(lengths) > 1 or not CONTENT_LENGTH.fullmatch(lengths[0].strip())):
        raise ValueError(f"Content-Length {lengths} is not one number of bytes")
    yield from _exactly(stream, int(lengths[0]) if lengths else 0)


def _chunked(stream: BufferedIOBase) -> Iterator[bytes]:
    total = 0
    while True:
        size_line = CHUNK_SIZE.fullmatch(stream.readline(MAX_LINE_BYTES))
        if size_line is None:
            raise ValueError("a chunk size must be hex digits")
        size = int(size_line[1], 16)
        if size == 0:
            break
        total += size
        if total > MAX_BODY_BYTES:  # before reading it: a huge size would otherwise be read whole
            raise BodyTooLarge
        yield from _exactly(stream, size)
        if stream.readline(3) not in (b"\r\n", b"\n"):
            raise ValueError("a chunk's data must end its line")
    for _ in range(MAX_TRAILERS):  # trailers, up to the empty line; ignored
        line = stream.readline(MAX_LINE_BYTES)
        if line in (b"\r\n", b"\n"):
            return
        if not line.endswith(b"\n"):
            raise ValueError("the trailers end early or a trailer is too long")
    raise ValueError(f"more than {MAX_TRAILERS} trailers")


def _exactly(stream: BufferedIOBase, size: int) -> Iterator[bytes]:
    while size > 0:
        piece = stream.read(min(size, 1 << 16))
        if not piece:
            raise ValueError("the body ended early")
        size -= len(piece)
        yield piece


from localcloud.apigateway import http_api  # noqa: E402 (it builds on this module)
