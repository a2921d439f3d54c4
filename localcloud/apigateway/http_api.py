"""HTTP APIs (API Gateway v2) on the local API: route selection, Lambda proxy events in payload format
2.0 (and 1.0), and the response rules of each format.

Routes are ``$default`` or ``METHOD /path`` with ``{param}`` and greedy ``{param+}`` parts; the most
specific route wins: more literal path parts first, then a method over ``ANY``, then ``$default``. A
request no route matches answers 404 ``{"message": "Not Found"}``. The ``$default`` stage serves at
the API's root, another stage under its name. JWT and Lambda authorizers, CORS preflight answers and
request parameter mapping are not implemented (a route with an authorizer is refused with 500).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localcloud.apigateway.local_api import (
    LAMBDA_URI,
    GatewayError,
    Request,
    Response,
    _body,
    _internal_error,
    _multi,
    _response,
    log,
)

LAMBDA_ARN = re.compile(r"^arn:aws[\w-]*:lambda:[\w-]+:\d{12}:function:[^/]+$")


def http_apis(account_id: str, region: str) -> dict[str, Any]:
    from moto.apigatewayv2.models import apigatewayv2_backends

    return {
        k: a for k, a in apigatewayv2_backends[account_id][region].apis.items() if a.protocol_type == "HTTP"
    }


@dataclass(frozen=True)
class HttpRoute:
    route: Any
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _DefaultRoute:
    route_key: str = "$default"


@dataclass(frozen=True)
class UrlApi:
    """A function URL in the place of an API in its events (``requestContext.apiId`` is the URL's id)."""

    api_id: str


DEFAULT_ROUTE = _DefaultRoute()


def _key_match(
    route_key: str, method: str, parts: list[str]
) -> tuple[tuple[int, int, int], dict[str, str]] | None:
    """(rank, path parameters) if ``route_key`` matches the request; higher ranks are more specific."""
    if route_key == "$default":
        return (0, 0, 0), {}
    key_method, _, key_path = route_key.partition(" ")
    pattern = [p for p in key_path.split("/") if p]
    greedy = bool(pattern) and pattern[-1].startswith("{") and pattern[-1].endswith("+}")
    fixed = pattern[:-1] if greedy else pattern
    if key_method not in ("ANY", method) or (
        len(parts) <= len(fixed) if greedy else len(parts) != len(fixed)
    ):
        return None
    params: dict[str, str] = {}
    for segment, part in zip(fixed, parts, strict=False):
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = part
        elif segment != part:
            return None
    if greedy:
        params[pattern[-1][1:-2]] = "/".join(parts[len(fixed) :])
    literal = sum(not segment.startswith("{") for segment in fixed)
    return (1 if greedy else 2, literal, key_method != "ANY"), params


def select_route(api: Any, method: str, path: str) -> HttpRoute:
    parts = [p for p in path.split("/") if p]
    matches = [
        (m[0], route, m[1])
        for route in api.routes.values()
        if (m := _key_match(route.route_key, method, parts))
    ]
    if not matches:
        raise GatewayError(404, "NotFoundException", "Not Found")
    _, route, params = max(matches, key=lambda m: m[0])
    return HttpRoute(route, params)


def stage_and_path(api: Any, path: str, stage: str | None) -> tuple[str, str]:
    """The stage a request is for and its path within the stage: ``$default`` at the root, others by name."""
    if stage is not None:
        return stage, path
    first, _, rest = path.lstrip("/").partition("/")
    if first and first in api.stages and first != "$default":
        return first, "/" + rest
    if "$default" in api.stages:
        return "$default", path
    raise GatewayError(404, "NotFoundException", "Not Found")


def function_of(api: Any, route: HttpRoute) -> tuple[str, str]:
    """(function, payload format version) of the route's Lambda proxy integration."""
    if route.route.authorization_type not in (None, "NONE"):
        raise GatewayError(500, "InternalServerErrorException",
                           f"{route.route.route_key}: authorizers ({route.route.authorization_type}) are not "
                           "supported by the local API")  # fmt: skip
    integration = api.integrations.get((route.route.target or "").removeprefix("integrations/"))
    uri = integration.integration_uri if integration is not None else ""
    function = (
        uri
        if LAMBDA_ARN.match(uri or "")
        else (m["function"] if (m := LAMBDA_URI.match(uri or "")) else None)
    )
    if integration is None or integration.integration_type != "AWS_PROXY" or function is None:
        raise GatewayError(500, "InternalServerErrorException",
                           f"{route.route.route_key} has no Lambda proxy integration ({uri or 'none'}): the local API "
                           "only supports AWS_PROXY integrations with Lambda")  # fmt: skip
    return function, integration.payload_format_version or "2.0"


def event(
    api: Any, stage: str, path: str, route: HttpRoute, request: Request, *, version: str, account_id: str,
    request_id: str, port: int,
) -> dict[str, Any]:  # fmt: skip
    """The Lambda proxy event, in the integration's payload format version."""
    split = urlsplit(request.target)
    pairs = parse_qsl(split.query, keep_blank_values=True)
    body, binary = _body(request.body or b"", request.header("Content-Type"), [])
    now = datetime.now(UTC)
    domain = request.header("Host") or f"127.0.0.1:{port}"
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    context = {
        "accountId": account_id,
        "apiId": api.api_id,
        "domainName": domain,
        "domainPrefix": domain.split(":")[0].split(".")[0],
        "requestId": request_id,
        "routeKey": route.route.route_key,
        "stage": stage,
    }
    if version == "1.0":
        headers = _multi(request.headers)
        params = _multi(pairs)
        return {
            "version": "1.0",
            "resource": route.route.route_key.partition(" ")[2] or "/",
            "path": raw_path,
            "httpMethod": request.method,
            "headers": {k: v[-1] for k, v in headers.items()},
            "multiValueHeaders": headers,
            "queryStringParameters": {k: v[-1] for k, v in params.items()} or None,
            "multiValueQueryStringParameters": params or None,
            "pathParameters": route.path_parameters or None,
            "stageVariables": None,
            "requestContext": context | {
                "httpMethod": request.method, "path": raw_path, "protocol": "HTTP/1.1",
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent")},
            },
            "body": body,
            "isBase64Encoded": binary,
        }  # fmt: skip
    headers_v2: dict[str, list[str]] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name.lower() == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers_v2.setdefault(name.lower(), []).append(value)
    queries: dict[str, list[str]] = {}
    for name, value in pairs:
        queries.setdefault(name, []).append(value)
    built: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route.route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": {name: ",".join(values) for name, values in headers_v2.items()},
        "requestContext": context | {
            "http": {"method": request.method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": request.source_ip, "userAgent": request.header("User-Agent") or ""},
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": binary,
    }  # fmt: skip
    if cookies:
        built["cookies"] = cookies
    if queries:
        built["queryStringParameters"] = {name: ",".join(values) for name, values in queries.items()}
    if route.path_parameters:
        built["pathParameters"] = route.path_parameters
    if body is not None:
        built["body"] = body
    return built


def response(result: Any, function: str, *, version: str) -> Response:
    """The HTTP response for the function's result, by the payload format version's rules."""
    if version == "1.0":
        return _response(result, function)
    if not (isinstance(result, dict) and "statusCode" in result):
        # Without a statusCode API Gateway takes the result as the JSON body of a 200.
        return Response(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    try:
        status, body = result["statusCode"], result.get("body")
        headers, cookies = result.get("headers") or {}, result.get("cookies") or []
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"statusCode {status!r} is not an HTTP status code")
        if not isinstance(headers, dict) or not isinstance(cookies, list):
            raise ValueError("headers must be an object and cookies a list")
        text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        raw = base64.b64decode(text, validate=True) if result.get("isBase64Encoded") else text.encode()
    except (ValueError, TypeError) as error:
        log.warning("Malformed Lambda proxy response from %s: %s", function, error)
        raise _internal_error() from error
    pairs = [(str(name), str(value)) for name, value in headers.items()]
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("Content-Type", "application/json"))
    pairs += [("Set-Cookie", str(cookie)) for cookie in cookies]
    return Response(status, pairs, raw)
