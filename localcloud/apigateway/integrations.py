"""REST API integrations other than Lambda proxy, run as API Gateway runs them: ``MOCK``, ``AWS`` (a
service's API, such as SQS ``SendMessage``, or a Lambda function without proxy), ``HTTP`` and
``HTTP_PROXY``.

The integration request: ``RequestParameters`` (``integration.request.header|querystring|path.X``
from ``method.request.*``, ``stageVariables.*``, ``context.*`` or a quoted literal), then the request
template for the request's content type (default ``application/json``); without one
``PassthroughBehavior`` decides: ``WHEN_NO_MATCH`` passes the body, ``NEVER`` (and ``WHEN_NO_TEMPLATES``
when the integration has templates) answers 415. A service is called at the local endpoint with a
SigV4-signed request and ``Accept: application/json``; an XML answer (the query protocol's) is turned
into JSON as AWS services answer that header.

The integration response: the one whose ``SelectionPattern`` matches the backend's status code (HTTP,
AWS), the Lambda function's error message, or MOCK's ``statusCode``; else the one without a pattern
(none: API Gateway's 500, "no default output mapping"). Its ``ResponseParameters`` set headers and its
template for the request's ``Accept`` (else ``application/json``, else the first) renders the body; an
empty template passes the body through. ``HTTP_PROXY`` passes request and response as they are.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localcloud.apigateway.templates import TemplateError, header_value, render, select, with_stage_variables

SERVICE_URI = re.compile(
    r"^arn:aws[\w-]*:apigateway:(?P<region>[\w-]+):(?P<service>[\w.-]+):(?P<kind>path|action)/(?P<rest>.*)$"
)
LAMBDA_PATH = re.compile(r"^2015-03-31/functions/(?P<function>[^/]+)/invocations$")
PARAMETER_TARGET = re.compile(r"^integration\.request\.(?P<kind>header|querystring|path)\.(?P<name>.+)$")
HOP_BY_HOP = frozenset({"connection", "content-length", "host", "keep-alive", "transfer-encoding", "upgrade"})
TIMEOUT_SECONDS = 29.0  # API Gateway's integration timeout


class IntegrationError(Exception):
    """API Gateway's own answer instead of the integration's (a configuration or backend failure)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass
class MethodRequest:
    """What the client sent, as the integration's templates and parameters see it."""

    http_method: str
    body: str
    headers: dict[str, str]
    query: dict[str, str]
    path_parameters: dict[str, str]
    context: dict[str, Any]
    stage_variables: dict[str, str]
    source_arn: str = ""  # the method's execute-api ARN, for the function's permission check

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def params(self) -> dict[str, dict[str, str]]:
        return {"path": self.path_parameters, "querystring": self.query, "header": self.headers}


@dataclass
class BackendAnswer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    selector: str | None = None  # what SelectionPattern is matched against (default: the status code)


@dataclass
class IntegrationResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Integrations:
    """Runs non-proxy integrations for the local API."""

    invoke: Callable[[str, Any], Any]  # a function invocation; raises with error_type and message on failure
    function_error: type[Exception]
    endpoint: str | None
    region: str
    access_key_id: str
    may_invoke: Callable[[str, str], bool] | None = None  # (function, source ARN): its permissions allow
    # (role ARN) -> that role's credentials (environment variable names): an AWS integration calls as its
    # credentials role; without this or a role, as the local cloud's own key
    role_credentials: Callable[[str], Mapping[str, str]] | None = None

    def run(self, integration: Any, request: MethodRequest) -> IntegrationResult:
        kind = integration.integration_type
        if kind == "HTTP_PROXY":
            answer = self._http(integration, request, proxy=True)
            return IntegrationResult(answer.status, list(answer.headers.items()), answer.body.encode())
        parameters = _integration_parameters(integration, request)
        payload = self._integration_body(integration, request)
        if kind == "MOCK":
            answer = _mock(payload)
        elif kind == "AWS":
            answer = self._service(integration, request, parameters, payload)
        elif kind == "HTTP":
            answer = self._http(integration, request, proxy=False, parameters=parameters, payload=payload)
        else:
            raise IntegrationError(
                500, "InternalServerErrorException", f"{kind} integrations are not run locally"
            )
        return _method_response(integration, request, answer)

    def _integration_body(self, integration: Any, request: MethodRequest) -> str:
        templates: dict[str, Any] = integration.request_templates or {}
        media_type = (request.header("Content-Type") or "application/json").split(";")[0].strip().lower()
        template = templates.get(media_type)
        if media_type in templates:
            return _render(template or "", request.body, request)
        behaviour = integration.passthrough_behaviour or "WHEN_NO_MATCH"
        if behaviour == "WHEN_NO_MATCH" or (behaviour == "WHEN_NO_TEMPLATES" and not templates):
            return request.body
        raise IntegrationError(415, "UnsupportedMediaTypeException", "Unsupported Media Type")

    def _service(
        self, integration: Any, request: MethodRequest, parameters: dict[str, dict[str, str]], payload: str
    ) -> BackendAnswer:
        uri = SERVICE_URI.match(with_stage_variables(integration.uri or "", request.stage_variables))
        if uri is None:
            raise IntegrationError(
                500, "InternalServerErrorException", f"not an AWS service URI: {integration.uri}"
            )
        service, rest = uri["service"].rsplit(".", 1)[-1], uri["rest"]
        function = LAMBDA_PATH.match(rest) if service == "lambda" and uri["kind"] == "path" else None
        if function is not None:
            return self._function(function["function"], payload, request.source_arn)
        if self.endpoint is None:
            raise IntegrationError(
                500, "InternalServerErrorException", "no local endpoint to call AWS services at"
            )
        if uri["kind"] == "action":
            action, _, query = rest.partition("&")
            target = f"/?Action={quote(action)}" + (f"&{query}" if query else "")
        else:
            target = "/" + _fill(rest, parameters["path"])
        if parameters["querystring"]:
            target += ("&" if "?" in target else "?") + urlencode(parameters["querystring"])
        headers = {
            "Accept": "application/json",
            "Content-Type": request.header("Content-Type") or "application/json",
        }
        headers |= parameters["header"]
        method, url = integration.http_method or "POST", self.endpoint + target
        signed = AWSRequest(method=method, url=url, data=payload.encode(), headers=headers)
        SigV4Auth(self._credentials(integration), service, uri["region"]).add_auth(signed)
        answer = _send(method, url, dict(signed.headers.items()), payload.encode())
        if "xml" in answer.headers.get("Content-Type", "").lower() and answer.body.strip().startswith("<"):
            answer.body, answer.headers["Content-Type"] = (
                json.dumps(_xml_as_json(answer.body)),
                "application/json",
            )
        return answer

    def _credentials(self, integration: Any) -> Credentials:
        role = getattr(integration, "credentials", None)
        if not role or self.role_credentials is None:
            return Credentials(self.access_key_id, "localcloud")
        keys = self.role_credentials(role)
        return Credentials(
            keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"], keys.get("AWS_SESSION_TOKEN")
        )

    def _function(self, function: str, payload: str, source_arn: str) -> BackendAnswer:
        """A Lambda function behind a non-proxy integration: the payload is its event, its result the
        body; an error's message is what selection patterns match."""
        if self.may_invoke is not None and not self.may_invoke(function, source_arn):
            raise IntegrationError(
                500, "AccessDeniedException", f"Invalid permissions on Lambda function {function}"
            )
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as error:
            raise IntegrationError(
                400, "BadRequestException", f"the integration request is not JSON: {error}"
            ) from error
        try:
            result = self.invoke(function, event)
        except self.function_error as error:
            error_type, message = getattr(error, "error_type", "Error"), getattr(error, "message", str(error))
            body = json.dumps({"errorMessage": message, "errorType": error_type})
            return BackendAnswer(200, {"Content-Type": "application/json"}, body, selector=message)
        return BackendAnswer(200, {"Content-Type": "application/json"}, json.dumps(result), selector="")

    def _http(
        self, integration: Any, request: MethodRequest, *, proxy: bool,
        parameters: dict[str, dict[str, str]] | None = None, payload: str | None = None,
    ) -> BackendAnswer:  # fmt: skip
        url = with_stage_variables(integration.uri or "", request.stage_variables)
        if proxy:
            url = _fill(url, request.path_parameters)
            query, headers = (
                dict(request.query),
                {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            body = request.body
        else:
            assert parameters is not None and payload is not None
            url = _fill(url, parameters["path"])
            query, headers, body = parameters["querystring"], parameters["header"], payload
        if query:
            url += ("&" if urlsplit(url).query else "?") + urlencode(query)
        return _send(
            integration.http_method or request.http_method, url, headers, body.encode() if body else None
        )


def _render(template: str, body: str, request: MethodRequest) -> str:
    try:
        return render(
            template, body=body, params=request.params, context=request.context,
            stage_variables=request.stage_variables,
        )  # fmt: skip
    except TemplateError as error:
        raise IntegrationError(500, "InternalServerErrorException", str(error)) from error


def _fill(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` and ``{name+}`` placeholders of a path or URL filled from ``values``."""
    return re.sub(r"\{([^}+]+)\+?\}", lambda m: str(values.get(m[1], "")), template)


def _integration_parameters(integration: Any, request: MethodRequest) -> dict[str, dict[str, str]]:
    """``integration.request.*`` values from their sources."""
    found: dict[str, dict[str, str]] = {"header": {}, "querystring": {}, "path": {}}
    for target, source in (integration.request_parameters or {}).items():
        destination = PARAMETER_TARGET.match(target)
        value = _parameter(str(source), request)
        if destination is not None and value is not None:
            found[destination["kind"]][destination["name"]] = value
    return found


def _literal(source: str) -> str | None:
    """The text of a quoted literal parameter source (``'application/json'``), else None."""
    return source[1:-1] if len(source) >= 2 and source[0] == source[-1] == "'" else None


def _parameter(source: str, request: MethodRequest) -> str | None:
    if (literal := _literal(source)) is not None:
        return literal
    kind, _, name = source.removeprefix("method.request.").partition(".")
    if source.startswith("method.request."):
        if kind == "header":
            return request.header(name)
        return {"path": request.path_parameters, "querystring": request.query}.get(kind, {}).get(name)
    if source.startswith("stageVariables."):
        return request.stage_variables.get(source.split(".", 1)[1])
    if source.startswith("context."):
        value = select(request.context, "$." + source.split(".", 1)[1])
        return None if value is None else str(value)
    return None


def _mock(payload: str) -> BackendAnswer:
    """MOCK: the request template's ``statusCode`` picks the response (200 without one)."""
    try:
        status = int((json.loads(payload) if payload.strip() else {}).get("statusCode", 200))
    except (ValueError, AttributeError, TypeError) as error:
        raise IntegrationError(
            500, "InternalServerErrorException", f"MOCK request template: {error}"
        ) from error
    return BackendAnswer(status)


def _method_response(integration: Any, request: MethodRequest, answer: BackendAnswer) -> IntegrationResult:
    chosen = _integration_response(integration, answer)
    headers: list[tuple[str, str]] = []
    for target, source in (chosen.response_parameters or {}).items():
        if target.startswith("method.response.header."):
            value = _response_parameter(str(source), answer)
            if value is not None:
                headers.append((target.removeprefix("method.response.header."), value))
    templates: dict[str, Any] = chosen.response_templates or {}
    accept = (request.header("Accept") or "").split(",")[0].split(";")[0].strip().lower()
    media_type = next(
        (t for t in (accept, "application/json") if t in templates), next(iter(templates), None)
    )
    template = templates.get(media_type) if media_type else None
    body = _render(template, answer.body, request) if template else answer.body
    content_type = media_type or answer.headers.get("Content-Type") or "application/json"
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", content_type))
    return IntegrationResult(int(chosen.status_code), headers, body.encode())


def _integration_response(integration: Any, answer: BackendAnswer) -> Any:
    responses = list((integration.integration_responses or {}).values())
    subject = answer.selector if answer.selector is not None else str(answer.status)
    for response in responses:
        if response.selection_pattern and re.fullmatch(response.selection_pattern, subject, re.DOTALL):
            return response
    default = next((r for r in responses if not r.selection_pattern), None)
    if default is None:
        raise IntegrationError(
            500, "InternalServerErrorException",
            "Internal server error (no integration response matches and none is the default)",
        )  # fmt: skip
    return default


def _response_parameter(source: str, answer: BackendAnswer) -> str | None:
    if (literal := _literal(source)) is not None:
        return literal
    if source.startswith("integration.response.header."):
        return header_value(answer.headers, source.removeprefix("integration.response.header."))
    if source == "integration.response.body":
        return answer.body
    if source.startswith("integration.response.body."):
        try:
            value = select(json.loads(answer.body), "$." + source.removeprefix("integration.response.body."))
        except ValueError:
            return None
        return None if value is None else value if isinstance(value, str) else json.dumps(value)
    return None


def _send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> BackendAnswer:
    if urlsplit(url).scheme not in ("http", "https"):
        raise IntegrationError(500, "InternalServerErrorException", f"not an HTTP(S) integration URL: {url}")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:  # noqa: S310
            return BackendAnswer(
                reply.status, dict(reply.headers.items()), reply.read().decode("utf-8", "replace")
            )
    except urllib.error.HTTPError as reply:
        return BackendAnswer(reply.code, dict(reply.headers.items()), reply.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, TimeoutError) as error:
        raise IntegrationError(504 if isinstance(error, TimeoutError) else 502, "InternalServerErrorException",
                               f"the integration endpoint failed: {error}") from error  # fmt: skip


def _xml_as_json(text: str) -> Any:
    """An XML answer as the JSON AWS services give for ``Accept: application/json``: elements by name
    (namespaces dropped), repeated names as lists, leaves as text."""

    def convert(element: ET.Element) -> Any:
        children = list(element)
        if not children:
            return element.text
        value: dict[str, Any] = {}
        for child in children:
            name = child.tag.rsplit("}", 1)[-1]
            item = convert(child)
            if name in value:
                value[name] = value[name] if isinstance(value[name], list) else [value[name]]
                value[name].append(item)
            else:
                value[name] = item
        return value

    root = ET.fromstring(text)  # noqa: S314 - the local endpoint's own answer
    return {root.tag.rsplit("}", 1)[-1]: convert(root)}
