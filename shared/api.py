"""The job HTTP API: accept work at once, then let clients poll it (or get a webhook).

Routes (API Gateway REST API, Lambda proxy integration, ``{proxy+}`` and the root):

* ``POST /orders``: publish one ``order.created`` event to ``ORDERS_TOPIC_ARN``; 202 with its id;
* ``POST /exports``: create a report export job and start its state machine; 202 with a status URL;
* ``GET /exports/{job_id}``: the job as it is now (status, progress, result, webhook delivery);
* ``GET /openapi.json``: the OpenAPI document, the same as ``functions/api/openapi.json``.

Retries are safe with an ``Idempotency-Key`` header. A key is remembered with a hash of the body
it came with (orders: a Powertools idempotency record kept ``ORDER_KEY_RETENTION``; exports: the job
itself): a replay of the same request answers what the first one did and has
``Idempotent-Replayed: true``, the same key with another body answers 409. The event id of an order
is derived from the key and the body, so even a publish repeated after a lost answer names the same
event, which consumers deduplicate; the job id of an export is derived from the key.

Every error is an RFC 9457 problem document (``application/problem+json``). Bodies over 64 KiB
(413) and bodies that are not ``application/json`` (415) are refused before anything parses them. A
method a route does not answer is 405 with ``Allow``. The OpenAPI document lists every status each
operation can get, API Gateway's own ``{"message"}`` answers (403, 429, 502, 504) among them; its
patterns use explicit character classes only, to mean the same in ECMA 262, Python and Rust.

Regenerate the committed OpenAPI document after changing a route or a model::

    .venv/bin/python -m shared.api
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
import uuid
from collections.abc import Mapping
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, Server, ServerVariable
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from asyncstack.runtime import aws
from asyncstack.runtime.events import new_envelope
from asyncstack.runtime.long_running import (
    JOB_ID_PATTERN,
    InvalidJobIdError,
    LongRunningStartSettings,
    check_job_id,
)
from asyncstack.runtime.observability import logger, metrics
from asyncstack.runtime.settings import load
from asyncstack.runtime.webhooks import WebhookStatus
from shared.config import ApiSettings
from shared.events import ORDER_CREATED, OrderCreated
from shared.exports import ExportJobs, ExportRequest, ExportStatus, new_job_id, start_export
from shared.orders import publish_order_created

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_BODY_BYTES",
    "OPENAPI_PATH",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "SOURCE",
    "Problem",
    "ProblemError",
    "app",
    "export_job_id",
    "openapi_document",
    "openapi_json",
    "order_event_id",
    "stage_url",
]

SOURCE = "asyncstack.api"
MAX_BODY_BYTES = 64 * 1024
PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://asyncstack.dev/problems/"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
REPLAYED_HEADER = "Idempotent-Replayed"
OPENAPI_PATH = Path(__file__).resolve().parent.parent / "functions" / "api" / "openapi.json"
REGENERATE_COMMAND = ".venv/bin/python -m shared.api"
# Namespaces the order event ids derived from Idempotency-Key values (uuid5 of the key and body).
_ORDER_KEY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://asyncstack.dev/idempotency/orders")
# How long an order's Idempotency-Key is remembered with its body (as long as payment APIs keep theirs).
ORDER_KEY_RETENTION_SECONDS = 24 * 3600
_JSON_MEDIA_TYPE = "application/json"
# The callback URLs the document promises to take: https, a host name (its last label starts with a
# letter, so never an IP address or a numeric host), port 80, 443 or 1024-65535, and a path, query
# and fragment of the characters kept as they are when the URL is percent-encoded. Every one is
# accepted (but a localhost name outside a local cloud); the API also takes some the pattern leaves
# out (a public IP address, http in a local cloud). No `\s`, `\d` or `\w`: the pattern means the same
# in ECMA 262, in Python's `re` and in Rust's regex.
_PORT = r"(?:80|443|102[4-9]|10[3-9][0-9]|1[1-9][0-9]{2}|[2-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
CALLBACK_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]://(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z][A-Za-z0-9-]{0,62}\.?"
    rf"(?::{_PORT})?(?:[/?#][A-Za-z0-9._~/?#\[\]@!$&'()*+,;=:%-]*)?$"
)
_SCHEMES = frozenset({"http", "https"})


# -- problem documents -------------------------------------------------------------------------


class FieldError(BaseModel):
    """One invalid field: where it is (``["body", "lines", 0, "sku"]``) and what is wrong."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(examples=[f"{PROBLEM_TYPE_BASE}validation-failed"])
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldError] | None = Field(default=None, description="The invalid fields (422 only)")


class ProblemError(Exception):
    """Raised by a route to answer a problem document."""

    def __init__(
        self,
        status: HTTPStatus,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or status.phrase
        self.errors = errors


def _problem_response(
    status: HTTPStatus,
    slug: str,
    detail: str,
    *,
    instance: str | None,
    title: str | None = None,
    errors: list[FieldError] | None = None,
) -> Response[str]:
    problem = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=title or status.phrase,
        status=status.value,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    # A string body: Powertools serializes only application/json bodies itself.
    return Response(
        status_code=status.value,
        content_type=PROBLEM_CONTENT_TYPE,
        body=problem.model_dump_json(exclude_none=True),
    )


class GatewayMessage(BaseModel):
    """An answer API Gateway gives itself, before or instead of the function: ``{"message": ...}``."""

    message: str = Field(examples=["Forbidden"])


def _problem_content(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"model": Problem}}}


def _gateway_content(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON_MEDIA_TYPE: {"model": GatewayMessage}}}


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, or the job id is not valid",
    404: "No such job (or no such route)",
    409: "The Idempotency-Key was used before with a different body, or its first request is still running",
    413: "The body is larger than 64 KiB (a problem); API Gateway's own answer past 10 MB is a message",
    415: "The body is not application/json",
    422: "The body or a header failed validation; `errors` lists the fields",
    500: "Unexpected error; the detail is generic, the error is in the function's log",
}


# What API Gateway answers itself on every operation: a JSON message, not a problem document.
_GATEWAY_DESCRIPTIONS = {
    403: "API Gateway: no or a wrong API key (Forbidden), or an unsigned request where IAM auth is used",
    429: "API Gateway: throttled (Too Many Requests) by the stage's or the API key's usage plan limits",
    502: "API Gateway: the function failed or gave a malformed answer (Internal server error)",
    504: "API Gateway: the function did not answer within the 29 s integration timeout",
}


def _problems(*codes: int) -> dict[int, Any]:
    """The problem documents of ``codes``, and API Gateway's own answers, which every operation can get."""
    responses = {code: _problem_content(_PROBLEM_DESCRIPTIONS[code]) for code in codes}
    if 413 in responses:  # past 10 MB API Gateway answers it before the function sees the body
        responses[413]["content"][_JSON_MEDIA_TYPE] = {"model": GatewayMessage}
    return {**responses, **{code: _gateway_content(text) for code, text in _GATEWAY_DESCRIPTIONS.items()}}


# -- request checks done before any parsing ------------------------------------------------------


def _body_bytes(event: APIGatewayProxyEvent) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body, validate=True)
    return body.encode("utf-8")


def _refuse_body(event: APIGatewayProxyEvent) -> Response[str] | None:
    """413 for a body over 64 KiB, 415 for one that is not JSON, 400 for one that is not text."""
    if not event.body:
        return None
    instance = event.path
    try:
        raw = _body_bytes(event)
    except (binascii.Error, ValueError):
        return _problem_response(
            HTTPStatus.BAD_REQUEST, "malformed-json", "The body is not valid base64.", instance=instance
        )
    if len(raw) > MAX_BODY_BYTES:
        return _problem_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload-too-large",
            f"The body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} bytes.",
            instance=instance,
        )
    content_type = event.headers.get("content-type")
    if content_type is not None and content_type.split(";")[0].strip().lower() != _JSON_MEDIA_TYPE:
        return _problem_response(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            f"The body must be {_JSON_MEDIA_TYPE}.",
            instance=instance,
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return _problem_response(
            HTTPStatus.BAD_REQUEST, "malformed-json", "The body is not UTF-8 text.", instance=instance
        )
    return None


def _refuse_array(event: APIGatewayProxyEvent) -> Response[str] | None:
    """422 for a JSON array where a route takes an object: Powertools would validate its first item."""
    if not event.body or event.http_method != "POST":
        return None
    try:
        parsed = json.loads(_body_bytes(event))
    except ValueError:  # not JSON: Powertools answers 400 malformed-json
        return None
    if not isinstance(parsed, list):
        return None
    return _problem_response(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation-failed",
        "The request failed validation in 1 place(s); see errors.",
        instance=event.path,
        errors=[FieldError(loc=["body"], msg="Input should be an object, not an array")],
    )


def _lowercase_media_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``Application/JSON`` as ``application/json``: Powertools compares it case-sensitively."""
    changed = dict(event)
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if not headers:
            continue
        changed[field] = {
            name: (value.lower() if isinstance(value, str) else [v.lower() for v in value])
            if name.lower() == "content-type"
            else value
            for name, value in headers.items()
        }
    return changed


class _JobApiResolver(APIGatewayRestResolver):
    """Checks the body's size and type before Powertools' validation parses it."""

    def resolve(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        proxy_event = APIGatewayProxyEvent(event)
        refused = _refuse_body(proxy_event) or _refuse_array(proxy_event)
        if refused is None:
            return super().resolve(_lowercase_media_type(event), context)
        logger.info(
            "request refused before parsing",
            extra={
                "status": refused.status_code,
                "path": proxy_event.path,
                "method": proxy_event.http_method,
            },
        )
        return ResponseBuilder[APIGatewayProxyEvent](response=refused).build(proxy_event)


app = _JobApiResolver(enable_validation=True)


# -- small helpers -------------------------------------------------------------------------------


def stage_url(event: APIGatewayProxyEvent) -> str:
    """The URL of the stage this request came in on: ``https://{domainName}/{stage}``.

    The scheme is ``X-Forwarded-Proto`` if that says http or https (the local API serves plain
    http), else https. Without a domain name (a console test invocation) the URL is relative.
    """
    context = event.request_context
    domain = context.domain_name or event.headers.get("host") or ""
    forwarded = (event.headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in _SCHEMES else "https"
    stage = f"/{context.stage}" if context.stage and context.stage != "$default" else ""
    return f"{scheme}://{domain}{stage}" if domain else stage


def order_event_id(idempotency_key: str | None, order: OrderCreated) -> str:
    """The event id of an order: a new one, or one derived from the Idempotency-Key and the order, so a
    key reused with another body (after its record expired) can never name an event already published."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    digest = hashlib.sha256(order.model_dump_json().encode("utf-8")).hexdigest()
    return str(uuid.uuid5(_ORDER_KEY_NAMESPACE, f"{idempotency_key}\n{digest}"))


def export_job_id(idempotency_key: str | None) -> str:
    """The job id of an export: a new one, or ``exp-`` and 32 hex of the key's SHA-256."""
    if idempotency_key is None:
        return new_job_id()
    return "exp-" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


def _requested(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a job was asked for: its params, and its callback URL (kept with the webhook's state)."""
    stored = dict(job.get("params") or {})
    stored.setdefault("callback_url", (job.get("webhook") or {}).get("callback_url"))
    # Not validated again: it was when the job was made, and defaults fill what was left out.
    return ExportRequest.model_construct(**stored).model_dump()


def _same_request(job: Mapping[str, Any], request: ExportRequest) -> bool:
    return _requested(job) == request.model_dump()


# -- models of the responses ---------------------------------------------------------------------


class OrderAccepted(BaseModel):
    event_id: str = Field(description="The order.created event's id; consumers deduplicate on it")
    status: str = Field(default="accepted", examples=["accepted"])


class ExportAccepted(BaseModel):
    job_id: str
    status: ExportStatus
    status_url: str = Field(description="Poll it with GET; the same URL as the Location header")


class ProgressView(BaseModel):
    model_config = ConfigDict(extra="allow")

    current: int = 0
    total: int | None = None
    percent: float = 0.0
    eta_seconds: float | None = None
    updated_at: str | None = None


class WebhookAttemptView(BaseModel):
    model_config = ConfigDict(extra="allow")

    attempt: int
    at: str | None = None
    status_code: int | None = Field(default=None, description="The receiver's HTTP status, if it answered")
    error: str | None = None


class WebhookView(BaseModel):
    """The callback of a job: where it goes, its delivery state and every attempt so far."""

    model_config = ConfigDict(extra="allow")

    callback_url: str | None = None
    status: WebhookStatus
    attempts: list[WebhookAttemptView] = Field(default_factory=list)
    delivered_at: str | None = None


class FailureView(BaseModel):
    """Why a job FAILED, as clients see it: a stable code and a generic sentence (details are in our logs)."""

    code: Literal["timeout", "failed"]
    message: str


class ExportJobView(BaseModel):
    """An export job as ``GET /exports/{job_id}`` shows it."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    kind: str
    status: ExportStatus
    params: dict[str, Any] = Field(default_factory=dict, description="The options it was started with")
    progress: ProgressView
    result: dict[str, Any] | None = Field(default=None, description="Where the report is, once SUCCEEDED")
    error: FailureView | None = Field(default=None, description="Why it FAILED")
    webhook: WebhookView | None = Field(default=None, description="Null when the job has no callback_url")
    runs: int = 0
    processing_ms: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


_REPLAYED_HEADER_DOC: OpenAPIResponseHeader = {
    "description": "true when an earlier request with this Idempotency-Key was answered the same",
    "schema": {"type": "string", "enum": ["true"]},
}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes a retry name the same event or job: 1-128 of A-Z a-z 0-9 . _ : -",
    ),
]


# -- routes --------------------------------------------------------------------------------------


@app.post(
    "/orders",
    summary="Accept an order",
    description="Publishes one order.created event and answers at once; the order is processed "
    "asynchronously. With an Idempotency-Key a retry answers the same event id (Idempotent-Replayed: "
    "true) and the same key with another body is 409.",
    operation_id="createOrder",
    tags=["orders"],
    status_code=202,
    responses={
        202: {
            "description": "Accepted: the event is published (or, on a replay, it was)",
            "headers": {REPLAYED_HEADER: _REPLAYED_HEADER_DOC},
        },
        **_problems(400, 409, 413, 415, 422, 500),
    },
    custom_response_validation_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
)
def create_order(
    order: Annotated[OrderCreated, Body(description="The order")],
    idempotency_key: IdempotencyKey = None,
) -> Response[OrderAccepted]:
    if idempotency_key is None:
        accepted = _publish_order({"key": None, "order": order.model_dump(mode="json")})
    else:
        accepted = _remembered_order(idempotency_key, order)
    replayed = bool(accepted.pop("replayed", False))
    metrics.add_metric(name="OrderReplays" if replayed else "OrdersAccepted", unit=MetricUnit.Count, value=1)
    logger.info("order accepted", extra={"event_id": accepted["event_id"], "order_id": order.order_id,
                                         "replayed": replayed})  # fmt: skip
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=_JSON_MEDIA_TYPE,
        headers={REPLAYED_HEADER: "true"} if replayed else {},
        body=OrderAccepted(event_id=accepted["event_id"]),
    )


def _publish_order(request: dict[str, Any]) -> dict[str, Any]:
    order = OrderCreated.model_validate(request["order"])
    envelope = new_envelope(
        ORDER_CREATED, order, source=SOURCE, event_id=order_event_id(request["key"], order)
    )
    [result] = publish_order_created([envelope], topic_arn=load(ApiSettings).orders_topic_arn)
    if not result.ok:
        raise RuntimeError(
            f"publishing {envelope.event_id} failed: {result.error_code}: {result.error_message}"
        )
    return {"event_id": envelope.event_id}


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True}


# Orders with an Idempotency-Key are published once per key; the key is stored with a hash of the order.
_ORDER_KEYS = IdempotencyConfig(
    event_key_jmespath="key",
    payload_validation_jmespath="order",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=ORDER_KEY_RETENTION_SECONDS,
    hash_function="sha256",
    response_hook=_mark_replayed,
)


@cache
def _publish_order_once() -> Any:
    """``_publish_order`` behind the idempotency record, made on first use (the client at cold start)."""
    store = DynamoDBPersistenceLayer(
        table_name=load(ApiSettings).idempotency_table_name, boto3_client=aws.client("dynamodb")
    )
    return idempotent_function(
        _publish_order, data_keyword_argument="request", persistence_store=store, config=_ORDER_KEYS,
        key_prefix="api.orders",
    )  # fmt: skip


def _remembered_order(idempotency_key: str, order: OrderCreated) -> dict[str, Any]:
    _ORDER_KEYS.register_lambda_context(app.lambda_context)
    request = {"key": idempotency_key, "order": order.model_dump(mode="json")}
    try:
        return dict(_publish_order_once()(request=request))
    except IdempotencyValidationError:
        raise _key_reused("an order") from None
    except IdempotencyAlreadyInProgressError:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            "idempotency-key-in-use",
            "A request with this Idempotency-Key is still being processed; retry it in a few seconds.",
        ) from None


@app.post(
    "/exports",
    summary="Start a report export",
    description="Creates the job and starts it; poll status_url (also the Location header). With an "
    "Idempotency-Key a retry answers the same job and the header Idempotent-Replayed: true.",
    operation_id="startExport",
    tags=["exports"],
    status_code=202,
    responses={
        202: {
            "description": "Accepted: the job is queued (or, on a replay, as it is now)",
            "headers": {
                "Location": {"description": "The job's status URL", "schema": {"type": "string"}},
                REPLAYED_HEADER: _REPLAYED_HEADER_DOC,
            },
        },
        **_problems(400, 409, 413, 415, 422, 500),
    },
    custom_response_validation_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
)
def create_export(
    request: Annotated[ExportRequest | None, Body(description="Options; the body may be omitted")] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response[ExportAccepted]:
    request = request or ExportRequest()
    job_id = export_job_id(idempotency_key)
    jobs = ExportJobs()
    existing = jobs.get(job_id) if idempotency_key is not None else None
    if existing is not None and not _same_request(existing, request):
        raise _key_reused()
    if existing is None or existing.get("status") == ExportStatus.QUEUED:
        # Also on a replay of a QUEUED job: the first request may have stopped before starting it.
        job = start_export(
            job_id, request, state_machine_arn=load(LongRunningStartSettings).state_machine_arn, jobs=jobs
        )
        if not _same_request(job, request):  # a concurrent first request with this key won
            raise _key_reused()
    else:
        job = existing
    replayed = existing is not None
    status_url = f"{stage_url(app.current_event)}/exports/{job_id}"
    headers = {"Location": status_url, **({REPLAYED_HEADER: "true"} if replayed else {})}
    metrics.add_metric(name="ExportReplays" if replayed else "ExportsStarted", unit=MetricUnit.Count, value=1)
    logger.info("export accepted", extra={"job_id": job_id, "replayed": replayed})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=_JSON_MEDIA_TYPE,
        headers=headers,
        body=ExportAccepted(job_id=job_id, status=job["status"], status_url=status_url),
    )


def _key_reused(what: str = "an export") -> ProblemError:
    return ProblemError(
        HTTPStatus.CONFLICT,
        "idempotency-key-reused",
        f"This Idempotency-Key was used for {what} with a different body; use a new key.",
    )


@app.get(
    "/exports/<job_id>",
    summary="An export job's status, progress and result",
    operation_id="getExport",
    tags=["exports"],
    responses={200: {"description": "The job"}, **_problems(400, 404, 500)},
    custom_response_validation_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
)
def get_export(
    job_id: Annotated[
        str,
        PathParam(
            pattern=JOB_ID_PATTERN.pattern,
            description="The job id from POST /exports: 1-80 of A-Z a-z 0-9 _ - (else 400 invalid-job-id)",
        ),
    ],
) -> ExportJobView:
    requested = app.current_event.path.rsplit("/", 1)[-1]
    if requested != job_id:  # the router's `$` also matches before a final newline, which it drops
        raise InvalidJobIdError(f"job id {requested!r} must be 1-80 characters of letters, digits, _ and -")
    job = ExportJobs().get(check_job_id(job_id))
    if job is None:
        raise ProblemError(HTTPStatus.NOT_FOUND, "export-not-found", f"There is no export job {job_id}.")
    return ExportJobView.model_validate(job)


@app.get("/openapi.json", include_in_schema=False, enable_validation=False)
def get_openapi() -> Response[str]:
    return Response(status_code=HTTPStatus.OK.value, content_type=_JSON_MEDIA_TYPE, body=openapi_json())


# -- errors --------------------------------------------------------------------------------------


def _instance() -> str | None:
    try:
        return app.current_event.path
    except AttributeError:  # pragma: no cover - only outside a request
        return None


@app.exception_handler(ProblemError)
def _on_problem(error: ProblemError) -> Response[str]:
    return _problem_response(
        error.status, error.slug, error.detail, instance=_instance(), title=error.title, errors=error.errors
    )


@app.exception_handler(InvalidJobIdError)
def _on_invalid_job_id(error: InvalidJobIdError) -> Response[str]:
    return _problem_response(HTTPStatus.BAD_REQUEST, "invalid-job-id", str(error), instance=_instance())


def _loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


@app.exception_handler(RequestValidationError)
def _on_invalid_request(error: RequestValidationError) -> Response[str]:
    errors = list(error.errors())
    if any(_loc(e.get("loc", ()))[:1] == ["response"] for e in errors):
        return _on_unexpected(error)  # the route's own answer failed validation: our bug, not theirs
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error") or "invalid JSON"
        position = _loc(malformed.get("loc", ()))[1:2]
        where = f" at character {position[0]}" if position else ""
        return _problem_response(
            HTTPStatus.BAD_REQUEST,
            "malformed-json",
            f"The body is not valid JSON: {reason}{where}.",
            instance=_instance(),
        )
    if errors and all(_loc(e.get("loc", ()))[:1] == ["path"] for e in errors):
        # The only path parameter is the job id; the same answer as check_job_id's.
        return _problem_response(
            HTTPStatus.BAD_REQUEST,
            "invalid-job-id",
            f"job id {errors[0].get('input')!r} must be 1-80 characters of letters, digits, _ and -",
            instance=_instance(),
        )
    field_errors = [FieldError(loc=_loc(e.get("loc", ())), msg=str(e.get("msg", ""))) for e in errors]
    return _problem_response(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation-failed",
        f"The request failed validation in {len(field_errors)} place(s); see errors.",
        instance=_instance(),
        errors=field_errors,
    )


@app.exception_handler(RequestUnsupportedContentType)
def _on_unsupported_content_type(error: RequestUnsupportedContentType) -> Response[str]:
    return _problem_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        f"The body must be {_JSON_MEDIA_TYPE}.",
        instance=_instance(),
    )


def _allowed_methods(path: str) -> list[str]:
    """The methods this API answers on ``path`` (a ``{name}`` part matches any one part)."""
    routes = {**{p: [m.upper() for m in ops] for p, ops in openapi_document()["paths"].items()},
              "/openapi.json": ["GET"]}  # fmt: skip
    parts = path.split("/")
    allowed: set[str] = set()
    for template, methods in routes.items():
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(
            want == got or (want.startswith("{") and got) for want, got in zip(pattern, parts, strict=True)
        ):
            allowed.update(methods)
    return sorted(allowed)


@app.not_found
def _on_not_found(error: NotFoundError) -> Response[str]:
    event = app.current_event
    allowed = _allowed_methods(event.path)
    if event.http_method in allowed:
        # The path has the shape of GET /exports/{job_id}, with characters the router does not take.
        job_id = event.path.rsplit("/", 1)[-1]
        return _problem_response(
            HTTPStatus.BAD_REQUEST,
            "invalid-job-id",
            f"job id {job_id!r} must be 1-80 characters of letters, digits, _ and -",
            instance=event.path,
        )
    if allowed:
        response = _problem_response(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "method-not-allowed",
            f"{event.path} answers {', '.join(allowed)}, not {event.http_method}.",
            instance=event.path,
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return _problem_response(
        HTTPStatus.NOT_FOUND,
        "not-found",
        f"There is no {event.http_method} {event.path} in this API.",
        instance=event.path,
    )


@app.exception_handler(ResponseValidationError)
def _on_invalid_response(error: ResponseValidationError) -> Response[str]:
    return _on_unexpected(error)


@app.exception_handler(Exception)
def _on_unexpected(error: Exception) -> Response[str]:
    logger.exception("unexpected error answering the request")
    metrics.add_metric(name="ApiErrors", unit=MetricUnit.Count, value=1)
    return _problem_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        "internal-error",
        "The request could not be completed because of an unexpected error; it was logged.",
        instance=_instance(),
    )


# -- the OpenAPI document ------------------------------------------------------------------------


def _referenced_schemas(document: dict[str, Any]) -> set[str]:
    """Component schemas reachable from the paths (Powertools adds its own default error models)."""
    schemas = document.get("components", {}).get("schemas", {})
    prefix = "#/components/schemas/"
    seen: set[str] = set()
    pending = [document.get("paths", {})]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in seen:
                seen.add(ref[len(prefix) :])
                pending.append(schemas.get(ref[len(prefix) :], {}))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return seen


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, generated from the routes and models."""
    schema = app.get_openapi_schema(
        title="asyncstack job API",
        version="1.0.0",
        description="Accepts orders and report exports and answers at once (202); clients poll "
        "GET /exports/{job_id} or pass callback_url to get a signed webhook. Errors are RFC 9457 "
        "problem documents (application/problem+json).",
        servers=[
            Server(
                url="{scheme}://{host}/{stage}",
                description="The API's stage URL (the stack output JobApiUrl)",
                variables={
                    "scheme": ServerVariable(default="https", enum=["https", "http"]),
                    "host": ServerVariable(
                        default="example.execute-api.us-east-1.amazonaws.com",
                        description="{rest-api-id}.execute-api.{region}.amazonaws.com, or 127.0.0.1:3000 "
                        "for the local API (http)",
                    ),
                    "stage": ServerVariable(default="v1"),
                },
            )
        ],
        security_schemes={
            "apiKey": APIKey.model_validate(
                {"in": "header", "name": "x-api-key", "description": "The API key, when the stack uses keys"}
            ),
            "sigv4": APIKey.model_validate(
                {
                    "in": "header",
                    "name": "Authorization",
                    "description": "A SigV4-signed request, when the stack uses IAM auth",
                    "openapi_extensions": {"x-amazon-apigateway-authtype": "awsSigv4"},
                }
            ),
        },
        security=[{"apiKey": []}, {"sigv4": []}],
    )
    document: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    # Powertools documents a 422 of its own error model on every route; this API answers problems.
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = {
                code: response
                for code, response in operation["responses"].items()
                if "HTTPValidationError" not in json.dumps(response)
            }
            operation["responses"] = dict(sorted(responses.items()))
    document["paths"] = dict(sorted(document["paths"].items()))
    callback_url = document["components"]["schemas"]["ExportRequest"]["properties"]["callback_url"]
    callback_url["anyOf"][0] |= {"minLength": 1, "pattern": CALLBACK_URL_PATTERN}
    callback_url["description"] = (
        "Called with a signed export.completed / export.failed event when the job ends. An https URL "
        "whose host is a public name or address (not localhost, a private, loopback or link-local "
        "address) and whose port is 80, 443 or 1024-65535; the pattern is the part of that a schema can say."
    )
    # A started export is polled at GET /exports/{job_id}: the link clients (and fuzzers) follow.
    document["paths"]["/exports"]["post"]["responses"]["202"]["links"] = {
        "GetExport": {
            "operationId": "getExport",
            "parameters": {"job_id": "$response.body#/job_id"},
            "description": "The job just started (also the Location header and status_url)",
        }
    }
    schemas = document.get("components", {}).get("schemas")
    if schemas:
        used = _referenced_schemas(document)
        document["components"]["schemas"] = {name: s for name, s in schemas.items() if name in used}
    return document


@cache
def openapi_json() -> str:
    """The OpenAPI document as committed in functions/api/openapi.json."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write functions/api/openapi.json from the code; ``--check`` only reports whether it is current."""
    args = sys.argv[1:] if argv is None else argv
    current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else None
    if args == ["--check"]:
        if current != openapi_json():
            print(f"{OPENAPI_PATH} is out of date: run {REGENERATE_COMMAND}", file=sys.stderr)
            return 1
        return 0
    if args:
        print(f"usage: {REGENERATE_COMMAND} [--check]", file=sys.stderr)
        return 2
    if current != openapi_json():
        OPENAPI_PATH.write_text(openapi_json(), encoding="utf-8")
        print(f"wrote {OPENAPI_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
