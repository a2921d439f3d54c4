"""The job HTTP API (shared/api.py, functions/api/handler.py) on moto: SNS and SQS, DynamoDB, Step Functions.

Requests are the API Gateway REST API (v1) proxy events in events/api-*.json, changed where a
test needs another body, header or path.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import boto3
import jsonschema_rs
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncstack import contract
from asyncstack.runtime.long_running.progress import Progress
from asyncstack.runtime.ssrf import check_callback_url
from shared import api, config
from shared.events import MAX_UNIT_PRICE_CENTS, OrderCreated
from shared.exports import ExportJobs, ExportRequest
from tests.conftest import EVENTS, load_event
from tests.unit.conftest import REGION, context, make_table

pytestmark = pytest.mark.unit

JOBS = "export-jobs"
SAMPLE_JOB = "exp-0123456789abcdef0123456789abcdef"  # the job of events/api-get-export.json
SAMPLES = sorted(path.name for path in EVENTS.glob("api-*.json"))
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "errors"}


def _client(service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name=REGION)


# -- fixtures and helpers ----------------------------------------------------------------------


class Env:
    """What the API function talks to: the orders topic (seen through a queue), the jobs table, the machine."""

    def __init__(self) -> None:
        self.topic_arn = _client("sns").create_topic(Name="orders")["TopicArn"]
        self.queue_url = _client("sqs").create_queue(QueueName="orders-seen")["QueueUrl"]
        queue_arn = _client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        _client("sns").subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        make_table(JOBS, "job_id")
        definition = {"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": True}}}
        self.state_machine_arn = _client("stepfunctions").create_state_machine(
            name="export",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/export-sfn",
        )["stateMachineArn"]

    def published(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            got = (
                _client("sqs")
                .receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
                )
                .get("Messages", [])
            )
            if not got:
                return messages
            for message in got:
                _client("sqs").delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            messages += got

    def executions(self) -> list[str]:
        executions = _client("stepfunctions").list_executions(stateMachineArn=self.state_machine_arn)
        return [execution["name"] for execution in executions["executions"]]

    def jobs(self) -> list[str]:
        return [item["job_id"]["S"] for item in _client("dynamodb").scan(TableName=JOBS)["Items"]]


@pytest.fixture
def env(aws: None, monkeypatch: pytest.MonkeyPatch) -> Env:
    resources = Env()
    for variable, value in {
        config.ORDERS_TOPIC_ARN: resources.topic_arn,
        contract.LONG_RUNNING_STATE_MACHINE_ARN: resources.state_machine_arn,
        contract.LONG_RUNNING_JOBS_TABLE_NAME: JOBS,
        contract.IDEMPOTENCY_TABLE_NAME: make_table("idempotency", "id", ttl="expiration"),
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("WEBHOOK_ALLOW_INSECURE", raising=False)
    api._publish_order_once.cache_clear()  # the idempotency store binds its table at first use
    return resources


@pytest.fixture
def handler(env: Env) -> ModuleType:
    """The deployed handler, imported as a cold start would."""
    return importlib.reload(importlib.import_module("functions.api.handler"))


def request(
    sample: str,
    *,
    body: Any = ...,
    headers: dict[str, str | None] | None = None,
    method: str | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """A sample event with another body (a str as is, anything else as JSON), headers (None removes one) or path."""
    event = copy.deepcopy(load_event(sample))
    if body is not ...:
        event["body"] = body if body is None or isinstance(body, str) else json.dumps(body)
    for name, value in (headers or {}).items():
        for field in ("headers", "multiValueHeaders"):
            existing = [key for key in event[field] if key.lower() == name.lower()]
            for key in existing:
                del event[field][key]
            if value is not None:
                event[field][name] = value if field == "headers" else [value]
    if method is not None:
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    if path is not None:
        event["path"] = path
        event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
        event["pathParameters"] = {"proxy": path.lstrip("/")}
    return event


Call = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def call(handler: ModuleType) -> Call:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return handler.handler(event, context(name="api-fn"))

    return invoke


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header (API Gateway REST proxy results carry them as multiValueHeaders)."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return values[0]
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def schema_valid(schema: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid under a schema of the OpenAPI document, as JSON Schema reads it."""
    components = api.openapi_document()["components"]
    return bool(jsonschema_rs.validator_for({**schema, "components": components}).is_valid(value))


def python_reading(pattern: str, value: str, flags: int = 0) -> bool:
    """``pattern`` as Python's ``re`` reads it, with its closing ``$`` meaning the end of the string
    (``\\Z``), as JSON Schema tools in Python (schemathesis, hypothesis-jsonschema) spell it."""
    return re.search(document_pattern_as_python(pattern), value, flags) is not None


def unescaped_outside_classes(pattern: str) -> str:
    """The characters of ``pattern`` that are neither escaped nor in a ``[...]`` class."""
    kept, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        else:
            kept.append(char)
    return "".join(kept)


def document_patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for value in node.values() for p in document_patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in document_patterns(value)]
    return []


# Every character some engine calls whitespace: ECMA 262's \s (with U+FEFF), Python's (with
# U+001C-U+001F and U+0085) and Rust's (Unicode White_Space); and a few neighbours.
SPACE_LIKE = sorted(
    set("\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff\u180e\u200b")
    | {chr(c) for c in range(0x2000, 0x200B)}
)


def problem(response: dict[str, Any], status: int, slug: str) -> dict[str, Any]:
    """The response's RFC 9457 problem document, checked for shape, status and type."""
    assert response["statusCode"] == status, response["body"]
    assert header(response, "Content-Type") == "application/problem+json"
    document = body(response)
    assert set(document) <= PROBLEM_FIELDS
    assert document["type"] == f"https://asyncstack.dev/problems/{slug}"
    assert document["status"] == status
    assert document["title"]
    assert document["detail"]
    return document


# -- the samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_is_a_rest_api_proxy_event(sample: str) -> None:
    event = APIGatewayProxyEventModel.model_validate(load_event(sample))
    assert event.requestContext.stage == "v1"
    assert event.requestContext.requestId
    assert event.requestContext.identity.sourceIp
    assert event.headers is not None and "x-api-key" in event.headers
    assert event.requestContext.path == f"/v1{event.path}"


# -- POST /orders ------------------------------------------------------------------------------


def test_an_order_is_published_and_answered_202(env: Env, call: Call) -> None:
    # Given an order
    event = request("api-post-order.json", headers={"Idempotency-Key": None})
    # When it is posted
    response = call(event)
    # Then the answer is 202 with the event id
    assert response["statusCode"] == 202
    assert header(response, "Content-Type") == "application/json"
    answer = body(response)
    assert answer == {"event_id": answer["event_id"], "status": "accepted"}
    # And exactly one order.created event went to the topic, typed by its message attribute
    [message] = env.published()
    assert message["MessageAttributes"]["type"] == {"DataType": "String", "StringValue": "order.created"}
    envelope = json.loads(message["Body"])
    assert envelope["event_id"] == answer["event_id"]
    assert (envelope["type"], envelope["source"]) == ("order.created", api.SOURCE)
    assert envelope["data"] == json.loads(event["body"])


def test_orders_without_a_key_get_new_event_ids(env: Env, call: Call) -> None:
    event = request("api-post-order.json", headers={"Idempotency-Key": None})
    first, second = body(call(event))["event_id"], body(call(event))["event_id"]
    assert first != second
    assert len(env.published()) == 2


def test_a_retried_order_with_the_same_key_is_answered_the_same_and_published_once(
    env: Env, call: Call
) -> None:
    # Given an order posted with an Idempotency-Key, and retried
    event = request("api-post-order.json")
    first, second = call(event), call(event)
    # Then both answers name one event, the second says it is a replay, and one event was published
    assert body(first)["event_id"] == body(second)["event_id"]
    assert (header(first, api.REPLAYED_HEADER), header(second, api.REPLAYED_HEADER)) == (None, "true")
    assert [json.loads(m["Body"])["event_id"] for m in env.published()] == [body(first)["event_id"]]
    # And another key is another event
    other = body(call(request("api-post-order.json", headers={"Idempotency-Key": "order-ord-0002"})))
    assert other["event_id"] != body(first)["event_id"]


def test_the_same_order_key_with_another_body_is_409_and_the_first_order_stands(env: Env, call: Call) -> None:
    """The defect this guards: the event id came from the key alone, so a second, different order with the
    same key was accepted with the first one's event id; inventory dead-lettered it as a conflicting
    duplicate and analytics overwrote the first order's row with it."""
    # Given an order accepted with a key
    event = request("api-post-order.json")
    first = body(call(event))
    # When another order arrives with the same key
    changed = {**json.loads(event["body"]), "customer_id": "cus-someone-else"}
    response = call(request("api-post-order.json", body=changed))
    # Then it is refused with 409, and only the first order was published
    document = problem(response, 409, "idempotency-key-reused")
    assert "order" in document["detail"]
    assert [json.loads(m["Body"])["data"] for m in env.published()] == [json.loads(event["body"])]
    assert body(call(event))["event_id"] == first["event_id"]


def test_an_order_event_id_names_the_key_and_the_body() -> None:
    """Even after the key's record expired, a different body under the same key is a different event."""
    order = OrderCreated.model_validate_json(load_event("api-post-order.json")["body"])
    other = order.model_copy(update={"customer_id": "cus-other"})
    assert api.order_event_id("k-1", order) == api.order_event_id("k-1", order)
    assert len({api.order_event_id("k-1", order), api.order_event_id("k-1", other),
                api.order_event_id("k-2", order)}) == 3  # fmt: skip


def test_a_schema_invalid_order_is_422_with_the_field_errors(env: Env, call: Call) -> None:
    document = problem(call(load_event("api-post-order-invalid.json")), 422, "validation-failed")
    assert document["instance"] == "/orders"
    locations = {tuple(error["loc"]) for error in document["errors"]}
    assert locations == {
        ("body", "customer_email"),
        ("body", "lines", 0, "sku"),
        ("body", "lines", 0, "quantity"),
    }
    assert all(error["msg"] for error in document["errors"])
    assert env.published() == []


@pytest.mark.parametrize(
    ("order", "location"),
    [
        (None, ["body"]),
        ([], ["body"]),
        ({"order_id": "o-1"}, ["body", "customer_id"]),
    ],
)
def test_a_missing_or_wrong_shaped_body_is_422(env: Env, call: Call, order: Any, location: list[Any]) -> None:
    document = problem(call(request("api-post-order.json", body=order)), 422, "validation-failed")
    assert location in [error["loc"] for error in document["errors"]]


@pytest.mark.parametrize("value", [True, False, "5", 2.5])
def test_an_integer_that_is_not_a_json_integer_is_422(env: Env, call: Call, value: Any) -> None:
    """The defect this guards: the document says `integer` but pydantic's lax mode took true as 1 (and false
    as 0, "5" as 5), so an order with `"unit_price_cents": false` was published."""
    order = json.loads(load_event("api-post-order.json")["body"])
    order["lines"][0] |= {"quantity": value, "unit_price_cents": value}
    document = problem(call(request("api-post-order.json", body=order)), 422, "validation-failed")
    assert {tuple(e["loc"]) for e in document["errors"]} == {
        ("body", "lines", 0, "quantity"),
        ("body", "lines", 0, "unit_price_cents"),
    }
    assert env.published() == []
    export = problem(
        call(request("api-post-export.json", body={"chunk_size": value})), 422, "validation-failed"
    )
    assert [e["loc"] for e in export["errors"]] == [["body", "chunk_size"]]
    assert env.jobs() == []


def test_a_unit_price_whose_total_would_not_stay_exact_is_422(env: Env, call: Call) -> None:
    """The defect this guards: a price of 10**40 cents was accepted, and the analytics row's total had more
    digits than a DynamoDB number holds (AWS refuses the write; moto stored it, then failed every Scan)."""
    order = json.loads(load_event("api-post-order.json")["body"])
    order["lines"] = [{"sku": "SKU-1", "quantity": 1000, "unit_price_cents": MAX_UNIT_PRICE_CENTS + 1}]
    document = problem(call(request("api-post-order.json", body=order)), 422, "validation-failed")
    assert [e["loc"] for e in document["errors"]] == [["body", "lines", 0, "unit_price_cents"]]
    assert env.published() == []
    # And the largest order allowed totals an exact JSON number for any client, far within 38 digits
    largest = OrderCreated.model_validate(
        json.loads(load_event("api-post-order.json")["body"])
        | {
            "lines": [
                {"sku": f"SKU-{n}", "quantity": 1000, "unit_price_cents": MAX_UNIT_PRICE_CENTS}
                for n in range(50)
            ]
        }
    )
    assert largest.total_cents <= 2**53


def test_an_integral_number_is_an_integer(env: Env, call: Call) -> None:
    order = json.loads(load_event("api-post-order.json")["body"])
    order["lines"][0] |= {"quantity": 2.0}
    assert (
        call(request("api-post-order.json", body=order, headers={"Idempotency-Key": None}))["statusCode"]
        == 202
    )


@pytest.mark.parametrize("sample", ["api-post-order.json", "api-post-export.json"])
@pytest.mark.parametrize("shape", ["[body]", "[body, {}]"])
def test_a_json_array_of_bodies_is_422(env: Env, call: Call, sample: str, shape: str) -> None:
    """The defect this guards: Powertools validated the first item of an array body, so `[{}]` started an
    export and `[order]` published the order, where the document says the body is an object."""
    one = json.loads(load_event(sample)["body"] or "{}")
    array = [one] if shape == "[body]" else [one, {}]
    document = problem(call(request(sample, body=array)), 422, "validation-failed")
    assert [error["loc"] for error in document["errors"]] == [["body"]]
    assert (env.published(), env.jobs()) == ([], [])


def test_an_unknown_field_is_422(env: Env, call: Call) -> None:
    order = {**json.loads(load_event("api-post-order.json")["body"]), "coupon": "FREE"}
    document = problem(call(request("api-post-order.json", body=order)), 422, "validation-failed")
    assert [error["loc"] for error in document["errors"]] == [["body", "coupon"]]


def test_malformed_json_is_400(env: Env, call: Call) -> None:
    document = problem(call(load_event("api-post-order-malformed.json")), 400, "malformed-json")
    assert "not valid JSON" in document["detail"]
    assert "errors" not in document
    assert env.published() == []


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "slash/no"])
def test_a_malformed_idempotency_key_is_422(env: Env, call: Call, key: str) -> None:
    response = call(request("api-post-order.json", headers={"Idempotency-Key": key}))
    document = problem(response, 422, "validation-failed")
    assert [error["loc"] for error in document["errors"]] == [["header", "idempotency-key"]]
    assert env.published() == []


def test_the_longest_allowed_idempotency_key_is_accepted(env: Env, call: Call) -> None:
    key = "A-z0._:" + "9" * 121
    assert call(request("api-post-order.json", headers={"Idempotency-Key": key}))["statusCode"] == 202


# -- POST /exports -----------------------------------------------------------------------------


def test_an_export_is_started_and_answered_202_with_its_status_url(env: Env, call: Call) -> None:
    # When an export is requested
    response = call(load_event("api-post-export.json"))
    # Then the answer is 202 with the job id, its status and where to poll it
    assert response["statusCode"] == 202
    answer = body(response)
    job_id = answer["job_id"]
    url = f"https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/v1/exports/{job_id}"
    assert answer == {"job_id": job_id, "status": "QUEUED", "status_url": url}
    assert header(response, "Location") == url
    assert header(response, "Idempotent-Replayed") is None
    # And the job exists with the requested options, and its execution (named after it) started
    job = ExportJobs().get(job_id)
    assert job is not None and job["params"]["chunk_size"] == 100
    assert env.executions() == [job_id]


def test_an_export_without_a_body_takes_the_defaults(env: Env, call: Call) -> None:
    response = call(request("api-post-export.json", body=None, headers={"Content-Type": None}))
    assert response["statusCode"] == 202
    job = ExportJobs().get(body(response)["job_id"])
    assert job is not None and job["params"]["chunk_size"] == ExportRequest().chunk_size


def test_the_status_url_of_the_local_api_is_plain_http(env: Env, call: Call) -> None:
    event = request("api-post-export.json", headers={"X-Forwarded-Proto": "http", "Host": "127.0.0.1:3000"})
    event["requestContext"]["domainName"] = "127.0.0.1:3000"
    response = call(event)
    assert body(response)["status_url"] == f"http://127.0.0.1:3000/v1/exports/{body(response)['job_id']}"


@pytest.mark.parametrize(
    ("domain", "forwarded", "stage", "expected"),
    [
        (
            "abc.execute-api.eu-west-1.amazonaws.com",
            "https",
            "v1",
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        ),
        (
            "abc.execute-api.eu-west-1.amazonaws.com",
            None,
            "prod",
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod",
        ),
        ("127.0.0.1:3000", "http", "v1", "http://127.0.0.1:3000/v1"),
        ("127.0.0.1:3000", "HTTP, https", "v1", "http://127.0.0.1:3000/v1"),
        ("abc.example.com", "gopher", "v1", "https://abc.example.com/v1"),
        (None, None, "v1", "/v1"),
    ],
)
def test_stage_url(domain: str | None, forwarded: str | None, stage: str, expected: str) -> None:
    event = request("api-post-export.json", headers={"X-Forwarded-Proto": forwarded, "Host": None})
    event["requestContext"].update(domainName=domain, stage=stage)
    assert api.stage_url(APIGatewayProxyEvent(event)) == expected


def test_an_idempotent_export_replay_answers_the_same_job_and_says_so(env: Env, call: Call) -> None:
    # Given an export requested with an Idempotency-Key
    event = load_event("api-post-export-idempotent.json")
    first = call(event)
    # When the client retries it
    second = call(event)
    # Then both are 202 with the same job, derived from the key, and only the retry is marked replayed
    assert first["statusCode"] == second["statusCode"] == 202
    assert body(first) == body(second)
    key = event["headers"]["Idempotency-Key"]
    job_id = "exp-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    assert body(first)["job_id"] == api.export_job_id(key) == job_id
    assert header(first, "Location") == header(second, "Location") == body(first)["status_url"]
    assert header(first, "Idempotent-Replayed") is None
    assert header(second, "Idempotent-Replayed") == "true"
    # And there is one job and one execution
    assert env.jobs() == [job_id]
    assert env.executions() == [job_id]


def test_a_replay_answers_the_job_as_it_is_now(env: Env, call: Call) -> None:
    event = load_event("api-post-export-idempotent.json")
    job_id = body(call(event))["job_id"]
    ExportJobs().begin_run(job_id)
    replay = call(event)
    assert body(replay)["status"] == "RUNNING"
    assert header(replay, "Idempotent-Replayed") == "true"


def test_a_replay_with_the_defaults_spelled_out_is_the_same_request(env: Env, call: Call) -> None:
    first = call(request("api-post-export-idempotent.json", body={}))
    second = call(request("api-post-export-idempotent.json", body={"chunk_size": ExportRequest().chunk_size}))
    assert second["statusCode"] == 202
    assert body(first)["job_id"] == body(second)["job_id"]


def test_the_same_key_with_another_body_is_409(env: Env, call: Call) -> None:
    # Given an export requested with a key
    call(load_event("api-post-export-idempotent.json"))
    # When the key comes again with another body
    response = call(request("api-post-export-idempotent.json", body={"chunk_size": 7}))
    # Then it is a conflict, and the first job is untouched
    document = problem(response, 409, "idempotency-key-reused")
    assert document["instance"] == "/exports"
    assert len(env.jobs()) == len(env.executions()) == 1
    [job_id] = env.jobs()
    job = ExportJobs().get(job_id)
    assert job is not None and job["params"]["chunk_size"] == 50


def test_the_callback_url_is_part_of_what_a_key_names(env: Env, call: Call) -> None:
    # Given an export with a callback, requested with a key
    with_callback = {"chunk_size": 50, "callback_url": "https://hooks.example.com/a"}
    first = call(request("api-post-export-idempotent.json", body=with_callback))
    # Then the same body again is a replay of the same job
    replay = call(request("api-post-export-idempotent.json", body=with_callback))
    assert (replay["statusCode"], header(replay, "Idempotent-Replayed")) == (202, "true")
    assert body(replay)["job_id"] == body(first)["job_id"]
    # And another callback, or none, with the same key is a conflict
    other = {**with_callback, "callback_url": "https://hooks.example.com/b"}
    problem(call(request("api-post-export-idempotent.json", body=other)), 409, "idempotency-key-reused")
    problem(
        call(request("api-post-export-idempotent.json", body={"chunk_size": 50})),
        409,
        "idempotency-key-reused",
    )


def test_a_key_that_lost_a_race_to_another_body_is_409(
    env: Env, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a concurrent first request with the same key (and another body) that creates the job
    # between this request's look-up and its start
    event = load_event("api-post-export-idempotent.json")
    job_id = api.export_job_id(event["headers"]["Idempotency-Key"])
    real_get = ExportJobs.get

    def get_then_race(self: ExportJobs, wanted: str) -> dict[str, Any] | None:
        found = real_get(self, wanted)
        if found is None:
            ExportJobs().create(job_id, ExportRequest(chunk_size=9))
        return found

    monkeypatch.setattr(ExportJobs, "get", get_then_race)
    # Then this request is a conflict
    problem(call(event), 409, "idempotency-key-reused")


@pytest.mark.parametrize(
    "callback_url",
    [
        "http://hooks.example.com/asyncstack",  # not https, and WEBHOOK_ALLOW_INSECURE is not true
        "https://169.254.169.254/latest/meta-data/",  # the instance metadata address
    ],
)
def test_an_unsafe_callback_url_is_422(env: Env, call: Call, callback_url: str) -> None:
    response = call(request("api-post-export.json", body={"callback_url": callback_url}))
    document = problem(response, 422, "validation-failed")
    assert [error["loc"] for error in document["errors"]] == [["body", "callback_url"]]
    assert env.jobs() == []


def test_the_insecure_callback_sample_is_422(env: Env, call: Call) -> None:
    problem(call(load_event("api-post-export-insecure-callback.json")), 422, "validation-failed")


def test_an_https_callback_url_is_kept_with_the_job(env: Env, call: Call) -> None:
    url = "https://hooks.example.com/asyncstack"
    response = call(request("api-post-export.json", body={"callback_url": url}))
    assert response["statusCode"] == 202, response["body"]
    job = ExportJobs().get(body(response)["job_id"])
    assert job is not None and job["webhook"]["callback_url"] == url
    # And the job's view shows the callback's state
    shown = body(call(request("api-get-export.json", path=f"/exports/{job['job_id']}")))
    assert shown["webhook"] == {
        "callback_url": url,
        "status": "pending",
        "attempts": [],
        "delivered_at": None,
    }


def test_a_callback_url_with_a_non_ascii_path_is_kept_percent_encoded(env: Env, call: Call) -> None:
    response = call(request("api-post-export.json", body={"callback_url": "https://hooks.example.com/café"}))
    assert response["statusCode"] == 202, response["body"]
    job = ExportJobs().get(body(response)["job_id"])
    assert job is not None and job["webhook"]["callback_url"] == "https://hooks.example.com/caf%C3%A9"


def test_an_http_callback_url_is_allowed_when_insecure_webhooks_are(
    env: Env, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOW_INSECURE", "true")
    response = call(request("api-post-export.json", body={"callback_url": "http://127.0.0.1:9000/hook"}))
    assert response["statusCode"] == 202, response["body"]


# -- GET /exports/{job_id} ---------------------------------------------------------------------


def test_a_job_is_shown_with_its_progress(env: Env, call: Call) -> None:
    # Given the sample's job, running and a quarter done
    jobs = ExportJobs()
    jobs.create(SAMPLE_JOB, ExportRequest(chunk_size=10))
    jobs.begin_run(SAMPLE_JOB)
    now = datetime(2026, 11, 29, 10, 0, 5, tzinfo=UTC)
    jobs.record_total(SAMPLE_JOB, Progress(total=40).after_chunk(current=10, processing_ms=500, now=now))
    # When it is polled
    response = call(load_event("api-get-export.json"))
    # Then the answer is the job as it is now
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    job = body(response)
    assert (job["job_id"], job["status"], job["params"]["chunk_size"]) == (SAMPLE_JOB, "RUNNING", 10)
    assert job["progress"] == {
        "current": 10,
        "total": 40,
        "percent": 25.0,
        "eta_seconds": 1.5,
        "updated_at": "2026-11-29T10:00:05Z",
    }
    assert job["created_at"] and job["result"] is None and job["error"] is None
    assert "webhook" in job  # null until the job has a callback_url
    assert job == {**jobs.get(SAMPLE_JOB), "webhook": job["webhook"]}


def test_a_job_started_through_the_api_can_be_polled_at_its_status_url(env: Env, call: Call) -> None:
    started = body(call(load_event("api-post-export.json")))
    path = started["status_url"].split("/v1", 1)[1]
    response = call(request("api-get-export.json", path=path))
    assert response["statusCode"] == 200
    assert body(response)["status"] == "QUEUED"


def test_an_unknown_job_is_404(env: Env, call: Call) -> None:
    document = problem(call(load_event("api-get-export-unknown.json")), 404, "export-not-found")
    assert document["instance"] == "/exports/exp-ffffffffffffffffffffffffffffffff"


@pytest.mark.parametrize("job_id", ["exp.not.valid", "x" * 81, "exp:1", "exp-1\n", "\u00e9t\u00e9", " exp-1"])
def test_a_malformed_job_id_is_400(env: Env, call: Call, job_id: str) -> None:
    problem(call(request("api-get-export.json", path=f"/exports/{job_id}")), 400, "invalid-job-id")


@pytest.mark.parametrize(
    "job_id", ["exp.not.valid", "x" * 81, "x" * 80, "exp:1", "exp-1\n", "\u00e9", "a", "exp-1", "A_b-9"]
)
def test_the_document_says_which_job_ids_are_refused(env: Env, call: Call, job_id: str) -> None:
    """The defect this guards: the document's job_id was any string, and the API refused most with 400
    invalid-job-id; now the parameter's pattern is the API's own, and a job id is refused iff it fails it."""
    [parameter] = api.openapi_document()["paths"]["/exports/{job_id}"]["get"]["parameters"]
    valid = schema_valid(parameter["schema"], job_id)
    response = call(request("api-get-export.json", path=f"/exports/{job_id}"))
    assert response["statusCode"] == (404 if valid else 400), response["body"]


def test_the_malformed_id_sample_is_400(env: Env, call: Call) -> None:
    problem(call(load_event("api-get-export-malformed.json")), 400, "invalid-job-id")


# -- GET /openapi.json -------------------------------------------------------------------------


def test_the_committed_openapi_document_is_the_one_the_code_generates() -> None:
    committed = api.OPENAPI_PATH.read_text(encoding="utf-8") if api.OPENAPI_PATH.exists() else ""
    assert committed == api.openapi_json(), (
        f"functions/api/openapi.json is out of date: regenerate it with `{api.REGENERATE_COMMAND}`"
    )


def test_the_api_serves_the_committed_openapi_document(env: Env, call: Call) -> None:
    response = call(load_event("api-get-openapi.json"))
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    assert response["body"] == api.OPENAPI_PATH.read_text(encoding="utf-8")


def test_the_openapi_document_describes_every_route_and_problem() -> None:
    document = api.openapi_document()
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    gateway = ["403", "429", "502", "504"]  # API Gateway's own answers: a JSON message
    assert {key: sorted(op["responses"]) for key, op in operations.items()} == {
        ("/exports", "post"): sorted(["202", "400", "409", "413", "415", "422", "500", *gateway]),
        ("/exports/{job_id}", "get"): sorted(["200", "400", "404", "500", *gateway]),
        ("/orders", "post"): sorted(["202", "400", "409", "413", "415", "422", "500", *gateway]),
    }
    for operation in operations.values():
        for code, response in operation["responses"].items():
            media_types = (
                ["application/json"]
                if code.startswith("2") or code in gateway
                else ["application/problem+json", "application/json"]
                if code == "413"  # the function's problem, or API Gateway's own past 10 MB
                else ["application/problem+json"]
            )
            assert list(response["content"]) == media_types, (code, operation["operationId"])
    assert "HTTPValidationError" not in json.dumps(document)
    assert document["components"]["schemas"]["OrderCreated"]["additionalProperties"] is False


def test_every_pattern_in_the_document_reads_the_same_in_every_engine() -> None:
    """The defect this guards: the email pattern said ``[^@\\s]``, and ``\\s`` is one set of characters in
    ECMA 262 (the document's dialect), another in Python's ``re`` and a third in pydantic's Rust engine,
    so a fuzzer drew addresses the API refused. Shorthand classes, ``.`` and word boundaries all depend
    on the engine; explicit classes do not."""
    patterns = document_patterns(api.openapi_document())
    assert len(patterns) >= 5
    for pattern in patterns:
        assert not re.search(r"\\[sSdDwWbB]", pattern), pattern
        assert "." not in unescaped_outside_classes(pattern), pattern
        re.compile(pattern)  # and Python reads it at all


@pytest.mark.parametrize("space", SPACE_LIKE, ids=lambda c: f"U+{ord(c):04X}")
def test_the_document_and_the_api_agree_on_every_space_like_character_in_an_email(
    env: Env, call: Call, space: str
) -> None:
    pattern = api.openapi_document()["components"]["schemas"]["OrderCreated"]["properties"]["customer_email"][
        "pattern"
    ]
    email = f"ann{space}lee@example.com"
    in_document = {python_reading(pattern, email), python_reading(pattern, email, re.ASCII)}
    assert len(in_document) == 1, f"Python's re reads the pattern two ways for {email!r}"
    order = {**json.loads(load_event("api-post-order.json")["body"]), "customer_email": email}
    response = call(request("api-post-order.json", body=order, headers={"Idempotency-Key": None}))
    assert response["statusCode"] == (202 if in_document == {True} else 422), response["body"]


def test_an_empty_callback_url_is_refused_by_the_document_as_by_the_api(env: Env, call: Call) -> None:
    """The defect this guards: the document took any string up to 2048 characters as callback_url, ""
    among them, and the API answered 422."""
    schema = api.openapi_document()["components"]["schemas"]["ExportRequest"]
    for url in ["", "ftp://hooks.example.com/x", "https://10.0.0.1/x", "https://user@hooks.example.com/x",
                "https://hooks.example.com:22/x", "https://hooks.example.com/a b"]:  # fmt: skip
        assert not schema_valid(schema, {"callback_url": url}), url
        response = call(request("api-post-export.json", body={"callback_url": url}))
        problem(response, 422, "validation-failed")
    assert schema_valid(schema, {"callback_url": "https://hooks.example.com:8443/x?y=1#z"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    url=st.deferred(lambda: st.from_regex(document_pattern_as_python(callback_url_pattern()), alphabet=ASCII))
)
def test_every_callback_url_the_document_allows_is_taken(url: str) -> None:
    """What the pattern lets through is taken (a localhost name only where insecure webhooks are allowed)."""
    if len(url) > 2048:
        return
    host = (urlsplit(url).hostname or "").rstrip(".")
    local = host == "localhost" or host.endswith(".localhost")
    assert check_callback_url(url, allow_insecure=True)
    if not local:
        assert check_callback_url(url, allow_insecure=False)


ASCII = st.characters(max_codepoint=0x7F)


def callback_url_pattern() -> str:
    schema = api.openapi_document()["components"]["schemas"]["ExportRequest"]["properties"]["callback_url"]
    return str(schema["anyOf"][0]["pattern"])


def document_pattern_as_python(pattern: str) -> str:
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern


def test_a_started_export_links_to_its_status() -> None:
    """The link the stateful fuzzer follows: POST /exports' 202 names GET /exports/{job_id} by its job_id."""
    document = api.openapi_document()
    links = document["paths"]["/exports"]["post"]["responses"]["202"]["links"]
    assert links == {
        "GetExport": {
            "operationId": "getExport",
            "parameters": {"job_id": "$response.body#/job_id"},
            "description": links["GetExport"]["description"],
        }
    }
    assert document["paths"]["/exports/{job_id}"]["get"]["operationId"] == "getExport"
    assert "job_id" in document["components"]["schemas"]["ExportAccepted"]["required"]


def test_the_regeneration_command_checks_and_writes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "openapi.json"
    monkeypatch.setattr(api, "OPENAPI_PATH", target)
    assert api.main(["--check"]) == 1
    assert api.REGENERATE_COMMAND in capsys.readouterr().err
    assert api.main([]) == 0
    assert target.read_text(encoding="utf-8") == api.openapi_json()
    assert api.main(["--check"]) == 0


# -- routing and request errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/reports"), ("GET", "/"), ("GET", "/exports/exp-1/more"), ("GET", "/exports/")],
)
def test_an_unknown_route_is_a_404_problem(env: Env, call: Call, method: str, path: str) -> None:
    event = request("api-unknown-route.json", method=method, path=path)
    document = problem(call(event), 404, "not-found")
    assert document["instance"] == path


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/exports/exp-1", "GET"),
        ("GET", "/orders", "POST"),
        ("PUT", "/exports", "POST"),
        ("PATCH", "/orders", "POST"),
        ("OPTIONS", "/orders", "POST"),
        ("POST", "/openapi.json", "GET"),
    ],
)
def test_a_method_the_route_does_not_answer_is_a_405_problem_with_allow(
    env: Env, call: Call, method: str, path: str, allowed: str
) -> None:
    """The defect this guards: a method the document does not declare on a route it does got 404 (no such
    route), where HTTP says 405 with the route's methods in Allow (schemathesis' unsupported_method)."""
    response = call(request("api-unknown-route.json", method=method, path=path))
    document = problem(response, 405, "method-not-allowed")
    assert header(response, "Allow") == allowed
    assert document["instance"] == path


def test_the_unknown_route_sample_is_a_404_problem(env: Env, call: Call) -> None:
    problem(call(load_event("api-unknown-route.json")), 404, "not-found")


def test_a_body_over_64_kib_is_413_before_it_is_parsed(env: Env, call: Call) -> None:
    too_big = "{" + " " * api.MAX_BODY_BYTES + "}"  # valid JSON, so only the size can refuse it
    problem(call(request("api-post-order.json", body=too_big)), 413, "payload-too-large")
    problem(
        call(request("api-post-export.json", body="[" * (api.MAX_BODY_BYTES + 1))), 413, "payload-too-large"
    )
    assert env.published() == [] and env.jobs() == []


def test_the_size_limit_counts_decoded_bytes(env: Env, call: Call) -> None:
    order = json.loads(load_event("api-post-order.json")["body"])
    padded = json.dumps(order).encode()
    padded = padded[:-1] + b" " * (api.MAX_BODY_BYTES - len(padded)) + b"}"
    event = request("api-post-order.json", body=base64.b64encode(padded).decode())
    event["isBase64Encoded"] = True
    # Exactly the limit (the base64 text is longer) is accepted ...
    assert len(padded) == api.MAX_BODY_BYTES
    assert call(event)["statusCode"] == 202
    # ... and one byte more is not
    event["body"] = base64.b64encode(padded + b" ").decode()
    problem(call(event), 413, "payload-too-large")


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_415(env: Env, call: Call, content_type: str) -> None:
    response = call(request("api-post-order.json", headers={"Content-Type": content_type}))
    problem(response, 415, "unsupported-media-type")
    assert env.published() == []


def test_the_unsupported_type_sample_is_415(env: Env, call: Call) -> None:
    problem(call(load_event("api-post-order-unsupported-type.json")), 415, "unsupported-media-type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", None])
def test_json_with_parameters_or_without_a_content_type_is_accepted(
    env: Env, call: Call, content_type: str | None
) -> None:
    assert call(request("api-post-order.json", headers={"Content-Type": content_type}))["statusCode"] == 202


def test_a_body_that_is_not_utf8_is_400(env: Env, call: Call) -> None:
    event = request("api-post-order.json", body=base64.b64encode(b'{"order_id": "\xff"}').decode())
    event["isBase64Encoded"] = True
    problem(call(event), 400, "malformed-json")


# -- unexpected errors -------------------------------------------------------------------------


def test_a_failed_publish_is_a_generic_500(env: Env, call: Call, caplog: pytest.LogCaptureFixture) -> None:
    # Given the topic is gone
    _client("sns").delete_topic(TopicArn=env.topic_arn)
    # When an order is posted
    document = problem(call(load_event("api-post-order.json")), 500, "internal-error")
    # Then the answer says nothing about the cause, which is in the log
    assert env.topic_arn not in json.dumps(document) and "NotFound" not in json.dumps(document)
    [logged] = [record for record in caplog.records if record.exc_info]
    assert "Topic does not exist" in str(logged.exc_info[1])


def test_a_failing_dependency_is_a_generic_500(
    env: Env, call: Call, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("table secret-internal-name is on fire")

    monkeypatch.setattr(ExportJobs, "get", broken)
    for event in (load_event("api-get-export.json"), load_event("api-post-export-idempotent.json")):
        document = problem(call(event), 500, "internal-error")
        assert "secret-internal-name" not in json.dumps(document)
        assert document["instance"] == event["path"]
    logged = [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert logged == ["table secret-internal-name is on fire"] * 2


def test_a_missing_setting_is_a_generic_500(env: Env, call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(contract.LONG_RUNNING_STATE_MACHINE_ARN)
    document = problem(call(load_event("api-post-export.json")), 500, "internal-error")
    assert contract.LONG_RUNNING_STATE_MACHINE_ARN not in document["detail"]
