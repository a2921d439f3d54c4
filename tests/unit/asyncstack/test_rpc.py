"""Request-reply over SQS, in process on moto: the client, the worker's batch handler, task tokens."""

from __future__ import annotations

import importlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError
from moto.core.config import default_user_config

from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.rpc import (
    ActionError,
    Heartbeat,
    RemoteError,
    RpcClient,
    RpcError,
    RpcServer,
    RpcTimeoutError,
)
from shared import png
from shared.thumbnails import resize_image
from tests.unit.conftest import REGION, WorkQueueFixture, context, make_work_queue

pytestmark = pytest.mark.unit

BUCKET = "asyncstack-images"


class QuotaExceededError(ActionError):
    error_type = "QuotaExceeded"


@dataclass
class Actions:
    """Test actions that record what ran."""

    calls: list[str] = field(default_factory=list)

    def echo(self, payload: Mapping[str, Any], heartbeat: Heartbeat) -> Mapping[str, Any]:
        self.calls.append("echo")
        heartbeat()
        return {"echo": dict(payload)}

    def over_quota(self, payload: Mapping[str, Any], heartbeat: Heartbeat) -> Mapping[str, Any]:
        self.calls.append("over_quota")
        raise QuotaExceededError("3 of 3 resizes used this minute")

    def flaky(self, payload: Mapping[str, Any], heartbeat: Heartbeat) -> Mapping[str, Any]:
        self.calls.append("flaky")
        raise TransientError("the images bucket is throttling")

    def registry(self) -> dict[str, Callable[[Mapping[str, Any], Heartbeat], Mapping[str, Any]]]:
        return {
            "echo": self.echo,
            "over_quota": self.over_quota,
            "flaky": self.flaky,
            "image.resize": resize_image,
        }


class FakeClock:
    """Epoch seconds that move only when told to (or when a fake long poll waits)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Wire:
    """The client's SQS client: real moto queues, but a long poll with nothing to receive returns at
    once and advances the fake clock by its wait instead, and a sent request can be served at once.
    """

    def __init__(self, sqs: Any, clock: FakeClock, serve: Callable[[], Any] | None) -> None:
        self._sqs, self._clock, self._serve = sqs, clock, serve
        self.waits: list[int] = []

    def send_message(self, **kwargs: Any) -> Any:
        response = self._sqs.send_message(**kwargs)
        if self._serve is not None:
            self._serve()
        return response

    def receive_message(self, **kwargs: Any) -> Any:
        self.waits.append(kwargs["WaitTimeSeconds"])
        response = self._sqs.receive_message(**{**kwargs, "WaitTimeSeconds": 0})
        if not response.get("Messages"):
            self._clock.now += kwargs["WaitTimeSeconds"]
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


class FakeStepFunctions:
    """Records task-token calls; ``fail`` maps an operation to the error code it answers with."""

    def __init__(self, fail: Mapping[str, str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = dict(fail or {})

    def _record(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, kwargs))
        if operation in self.fail:
            raise ClientError(
                {"Error": {"Code": self.fail[operation], "Message": "from the fake"}}, operation
            )
        return {}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._record("send_task_success", kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._record("send_task_failure", kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> dict[str, Any]:
        return self._record("send_task_heartbeat", kwargs)

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


class SpySqs:
    """The worker's SQS client, recording ``change_message_visibility`` calls."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.visibility: list[int] = []

    def change_message_visibility(self, **kwargs: Any) -> Any:
        self.visibility.append(kwargs["VisibilityTimeout"])
        return self._sqs.change_message_visibility(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


@dataclass
class Rpc:
    requests: WorkQueueFixture
    reply_url: str
    clock: FakeClock
    actions: Actions = field(default_factory=Actions)
    stepfunctions: FakeStepFunctions = field(default_factory=FakeStepFunctions)

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name=REGION)

    def server(self, **kwargs: Any) -> RpcServer:
        kwargs.setdefault("clock", self.clock)
        return RpcServer(actions=self.actions.registry(), stepfunctions=self.stepfunctions, **kwargs)

    def serve(self, server: RpcServer | None = None) -> dict[str, Any]:
        """The worker's invocation on whatever the request queue holds now."""
        return (server or self.server()).handle(self.requests.receive_event(), context())

    def client(self, *, serve: bool = True) -> tuple[RpcClient, Wire]:
        wire = Wire(self.sqs, self.clock, self.serve if serve else None)
        return RpcClient(self.requests.url, self.reply_url, sqs=wire, clock=self.clock), wire

    def send(self, body: Any, **attributes: str) -> str:
        return self.requests.send(body if isinstance(body, str) else json.dumps(body), **attributes)

    def address(self, **overrides: str) -> dict[str, str]:
        """Attributes of a well-formed request that the caller waits 10 s for."""
        return {
            "reply_to": self.reply_url,
            "correlation_id": str(uuid.uuid4()),
            "deadline": str(int((self.clock.now + 10) * 1000)),
            **overrides,
        }

    def replies(self, url: str | None = None) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(
            QueueUrl=url or self.reply_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        return [{"body": json.loads(m["Body"]), "correlation_id": m["MessageAttributes"]["correlation_id"]["StringValue"]} for m in got]  # fmt: skip


@pytest.fixture
def rpc(aws: None, monkeypatch: pytest.MonkeyPatch) -> Rpc:
    requests = make_work_queue("image-resize-requests")
    sqs = boto3.client("sqs", region_name=REGION)
    reply_url = sqs.create_queue(QueueName="image-resize-replies")["QueueUrl"]
    monkeypatch.setenv("QUEUE_URL", requests.url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", requests.dlq_url)
    monkeypatch.setenv(
        "RPC_REPLY_QUEUE_URLS", f" {reply_url} , https://sqs.us-east-1.amazonaws.com/123456789012/other"
    )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("IMAGES_BUCKET_NAME", BUCKET)
    return Rpc(requests=requests, reply_url=reply_url, clock=FakeClock(time.time()))


def failures(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def dead_letter_reasons(rpc: Rpc) -> list[dict[str, str]]:
    return [
        {name: value["StringValue"] for name, value in m["MessageAttributes"].items()}
        for m in rpc.requests.dead_letters()
    ]


# -- the client and the worker together ----------------------------------------------------


def test_a_call_round_trips_through_the_worker(rpc: Rpc) -> None:
    # Given a PNG in the images bucket and a worker serving the request queue
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="uploads/cat.png", Body=png.encode(png.gradient(320, 240)))
    client, wire = rpc.client()
    # When the client calls image.resize
    result = client.call("image.resize", {"source_key": "uploads/cat.png", "max_width": 64, "max_height": 64})
    # Then it gets the worker's result, and the thumbnail exists
    assert result == {
        "bucket": BUCKET,
        "key": "thumbnails/uploads/cat-64x48.png",
        "width": 64,
        "height": 48,
        "bytes": result["bytes"],
    }
    thumbnail = png.decode(s3.get_object(Bucket=BUCKET, Key=result["key"])["Body"].read())
    assert (thumbnail.width, thumbnail.height) == (64, 48)
    # And the reply was consumed: nothing is left on the reply queue, nothing was dead-lettered
    assert rpc.replies() == []
    assert rpc.requests.dead_letters() == []
    assert wire.waits == [10]


def test_the_request_follows_the_wire_contract(rpc: Rpc) -> None:
    # Given a client with no worker behind it
    client, _ = rpc.client(serve=False)
    started = rpc.clock.now
    # When a call times out
    with pytest.raises(RpcTimeoutError) as caught:
        client.call("echo", {"n": 1}, timeout=3)
    # Then the request on the queue is the documented body and attributes
    [record] = rpc.requests.receive_event()["Records"]
    attributes = {name: value["stringValue"] for name, value in record["messageAttributes"].items()}
    assert json.loads(record["body"]) == {"action": "echo", "payload": {"n": 1}}
    assert attributes["reply_to"] == rpc.reply_url
    assert uuid.UUID(attributes["correlation_id"]).version == 4
    assert attributes["correlation_id"] == caught.value.correlation_id
    assert int(attributes["deadline"]) == math.ceil((started + 3) * 1000)
    assert record["messageAttributes"]["deadline"]["dataType"] == "Number"


def test_a_foreign_and_a_late_reply_are_dropped_and_the_right_one_returned(rpc: Rpc) -> None:
    # Given a first call that timed out, answered late by a worker that still thought it in time
    client, _ = rpc.client(serve=False)
    sent_at = rpc.clock.now
    with pytest.raises(RpcTimeoutError):
        client.call("echo", {"call": 1}, timeout=2)
    rpc.serve(rpc.server(clock=lambda: sent_at))
    # And a reply that belongs to nobody here
    rpc.sqs.send_message(
        QueueUrl=rpc.reply_url,
        MessageBody=json.dumps({"correlation_id": "someone-else", "ok": True, "result": {"echo": "foreign"}}),
        MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": "someone-else"}},
    )
    waiting = rpc.sqs.get_queue_attributes(
        QueueUrl=rpc.reply_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert waiting["Attributes"]["ApproximateNumberOfMessages"] == "2"
    # When the next call is answered
    client, _ = rpc.client()
    result = client.call("echo", {"call": 2})
    # Then it gets its own result, and the two stale replies were deleted on the way
    assert result == {"echo": {"call": 2}}
    assert rpc.replies() == []


def test_no_reply_in_time_raises_rpc_timeout_with_a_clear_message(rpc: Rpc) -> None:
    # Given the real clock and real long polls, and no worker
    client = RpcClient(rpc.requests.url, rpc.reply_url, sqs=rpc.sqs)
    started = time.monotonic()
    # When the call waits 1 s
    with pytest.raises(RpcTimeoutError) as caught:
        client.call("image.resize", {"source_key": "x.png", "max_width": 1, "max_height": 1}, timeout=1)
    # Then it gave up after about a second, and says what, how long, which call and where
    assert 1 <= time.monotonic() - started < 3
    message = str(caught.value)
    assert "'image.resize'" in message
    assert "within 1 s" in message
    assert caught.value.correlation_id in message
    assert rpc.requests.url in message
    assert isinstance(caught.value, RpcError)
    assert isinstance(caught.value, TimeoutError)


def test_long_polls_wait_the_time_left_and_at_most_20_seconds(rpc: Rpc) -> None:
    client, wire = rpc.client(serve=False)
    with pytest.raises(RpcTimeoutError, match="within 45 s"):
        client.call("echo", {}, timeout=45)
    assert wire.waits == [20, 20, 5]


def test_an_error_reply_raises_remote_error_with_the_remote_type(rpc: Rpc) -> None:
    client, _ = rpc.client()
    with pytest.raises(RemoteError) as caught:
        client.call("over_quota", {})
    assert caught.value.error_type == "QuotaExceeded"
    assert caught.value.remote_message == "3 of 3 resizes used this minute"
    assert str(caught.value) == "'over_quota' failed remotely: QuotaExceeded: 3 of 3 resizes used this minute"


@pytest.mark.parametrize(
    ("action", "payload", "error_type", "message"),
    [
        ("image.rotate", {}, "UnknownAction", "unknown action 'image.rotate'; this worker handles echo, flaky, image.resize, over_quota"),
        ("image.resize", {"source_key": "cat.png", "max_width": 0, "max_height": 5}, "InvalidRequest", "max_width"),
        ("image.resize", {"source_key": "gone.png", "max_width": 5, "max_height": 5}, "SourceNotFound", "gone.png does not exist"),
    ],
    ids=["unknown-action", "invalid-payload", "missing-source"],
)  # fmt: skip
def test_business_errors_are_answered_not_retried(
    rpc: Rpc, action: str, payload: dict[str, Any], error_type: str, message: str
) -> None:
    # Given a request the worker can never fulfil
    rpc.send({"action": action, "payload": payload}, **rpc.address(correlation_id="c-1"))
    # When it is served
    response = rpc.serve()
    # Then the record succeeds (answered, so never dead-lettered) and the reply says why
    assert failures(response) == set()
    [reply] = rpc.replies()
    assert reply["correlation_id"] == "c-1"
    assert reply["body"]["correlation_id"] == "c-1"
    assert reply["body"]["ok"] is False
    assert reply["body"]["error"]["type"] == error_type
    assert message in reply["body"]["error"]["message"]
    assert rpc.requests.dead_letters() == []


def test_bad_json_with_a_reply_address_is_answered_as_invalid(rpc: Rpc) -> None:
    # The caller is told at once instead of waiting out its timeout
    rpc.send('{"action": "echo", ', **rpc.address(correlation_id="c-2"))
    assert failures(rpc.serve()) == set()
    [reply] = rpc.replies()
    assert reply["body"]["error"]["type"] == "InvalidRequest"
    assert "not valid JSON" in reply["body"]["error"]["message"]


# -- requests that cannot (or need not) be answered ----------------------------------------


def test_a_reply_to_outside_the_allowed_queues_is_refused_and_dead_lettered(rpc: Rpc) -> None:
    # Given a request asking for its reply on a queue the worker must not write to
    other = rpc.sqs.create_queue(QueueName="not-a-reply-queue")["QueueUrl"]
    message_id = rpc.send({"action": "echo", "payload": {}}, **rpc.address(reply_to=other))
    # When it is served
    response = rpc.serve()
    # Then nothing ran and nothing was sent there, and it is in the DLQ with the reason
    assert failures(response) == set()
    assert rpc.actions.calls == []
    assert rpc.replies(other) == []
    [reasons] = dead_letter_reasons(rpc)
    assert reasons["error-type"] == "ReplyToRefused"
    assert other in reasons["error-message"]
    assert "RPC_REPLY_QUEUE_URLS" in reasons["error-message"]
    assert reasons["original-message-id"] == message_id
    assert reasons["source-queue-arn"] == rpc.requests.arn
    assert reasons["reply_to"] == other  # the original attributes travel with it


@pytest.mark.parametrize(
    ("body", "attributes", "error_type"),
    [
        ({"action": "echo", "payload": {}}, {}, "Unanswerable"),
        ({"action": "echo", "payload": {}}, {"reply_to": "REPLY"}, "Unanswerable"),
        ({"action": "echo", "payload": {}}, {"correlation_id": "c-3"}, "Unanswerable"),
        ({"action": "echo", "payload": {}, "task_token": ""}, {}, "Unanswerable"),
        ('{"action": "echo", ', {}, "MalformedJson"),
        ('["echo"]', {}, "SchemaInvalid"),
    ],
    ids=["no-address", "no-correlation-id", "no-reply-to", "empty-token", "bad-json", "not-an-object"],
)
def test_requests_that_cannot_be_answered_go_to_the_dlq_with_their_reason(
    rpc: Rpc, body: Any, attributes: dict[str, str], error_type: str
) -> None:
    attributes = {k: rpc.reply_url if v == "REPLY" else v for k, v in attributes.items()}
    rpc.send(body, **attributes)
    assert failures(rpc.serve()) == set()
    [reasons] = dead_letter_reasons(rpc)
    assert reasons["error-type"] == error_type
    assert reasons["error-message"]
    assert rpc.actions.calls == []


def test_a_request_past_its_deadline_is_dropped_without_work(rpc: Rpc) -> None:
    # Given a request whose caller stopped waiting a moment ago
    rpc.send({"action": "echo", "payload": {}}, **rpc.address(deadline=str(int(rpc.clock.now * 1000) - 1)))
    # When it is served
    response = rpc.serve()
    # Then it succeeds without running, replying or dead-lettering
    assert failures(response) == set()
    assert rpc.actions.calls == []
    assert rpc.replies() == []
    assert rpc.requests.dead_letters() == []


def test_a_malformed_deadline_is_answered_as_invalid(rpc: Rpc) -> None:
    rpc.send({"action": "echo", "payload": {}}, **rpc.address(deadline="tomorrow"))
    assert failures(rpc.serve()) == set()
    [reply] = rpc.replies()
    assert reply["body"]["error"]["type"] == "InvalidRequest"
    assert rpc.actions.calls == []


# -- transient failures --------------------------------------------------------------------


def test_a_transient_error_fails_only_its_record_and_retries_before_the_deadline(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a backoff that would pick 100 s, and a flaky request whose caller waits 3 more seconds
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "100")
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "100")
    monkeypatch.setattr(random, "randint", lambda low, high: high)
    flaky = rpc.send(
        {"action": "flaky", "payload": {}}, **rpc.address(deadline=str(int((rpc.clock.now + 2.5) * 1000)))
    )
    rpc.send({"action": "echo", "payload": {}}, **rpc.address(correlation_id="c-ok"))
    spy = SpySqs(rpc.sqs)
    # When the batch is served
    response = rpc.serve(rpc.server(sqs=spy))
    # Then only the flaky record is reported for retry, the other one was answered
    assert failures(response) == {flaky}
    assert [reply["correlation_id"] for reply in rpc.replies()] == ["c-ok"]
    # And its retry comes before the caller gives up, not after the 100 s backoff
    assert spy.visibility == [3]
    assert rpc.requests.dead_letters() == []


def test_a_transient_error_without_a_deadline_backs_off_fully(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "100")
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "100")
    monkeypatch.setattr(random, "randint", lambda low, high: high)
    flaky = rpc.send({"action": "flaky", "payload": {}, "task_token": "tok"})
    spy = SpySqs(rpc.sqs)
    assert failures(rpc.serve(rpc.server(sqs=spy))) == {flaky}
    assert spy.visibility == [100]


def test_a_failing_reply_queue_retries_the_record(rpc: Rpc, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the reply cannot be sent (SQS throttling)
    class Throttled(SpySqs):
        def send_message(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "RequestThrottled", "Message": "slow down"}}, "SendMessage")

    message_id = rpc.send({"action": "echo", "payload": {}}, **rpc.address())
    # Then the record fails so that SQS delivers it again
    assert failures(rpc.serve(rpc.server(sqs=Throttled(rpc.sqs)))) == {message_id}


def test_close_to_the_function_timeout_the_rest_of_the_batch_is_released(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three requests and a context that falls below the 3 s margin after the first one
    ids = [rpc.send({"action": "echo", "payload": {"n": n}}, **rpc.address()) for n in range(3)]
    ctx = context(remaining_seconds=60)
    monkeypatch.setattr(
        ctx, "get_remaining_time_in_millis", lambda: 60_000 if not rpc.actions.calls else 1_000
    )
    # When the batch is served
    response = rpc.server().handle(rpc.requests.receive_event(), ctx)
    # Then the first is answered, the other two are reported untouched and are visible again now
    assert rpc.actions.calls == ["echo"]
    assert failures(response) == set(ids[1:])
    assert {r["messageId"] for r in rpc.requests.receive_event()["Records"]} == set(ids[1:])


# -- the Step Functions task-token variant -------------------------------------------------


def test_a_task_token_request_heartbeats_and_sends_task_success(rpc: Rpc) -> None:
    # Given the message a waitForTaskToken task sends: no reply_to, the token in the body
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="big.png", Body=png.encode(png.gradient(200, 100)))
    payload = {"source_key": "big.png", "max_width": 50, "max_height": 50}
    rpc.send({"action": "image.resize", "payload": payload, "task_token": "token-123"})
    # When it is served
    response = rpc.serve()
    # Then the task heard a heartbeat between each step, and then success with the result as output
    assert failures(response) == set()
    assert rpc.stepfunctions.operations() == ["send_task_heartbeat"] * 4 + ["send_task_success"]
    assert all(call["taskToken"] == "token-123" for _, call in rpc.stepfunctions.calls)
    _, success = rpc.stepfunctions.calls[-1]
    assert json.loads(success["output"]) == {
        "bucket": BUCKET,
        "key": "thumbnails/big-50x25.png",
        "width": 50,
        "height": 25,
        "bytes": s3.head_object(Bucket=BUCKET, Key="thumbnails/big-50x25.png")["ContentLength"],
    }
    assert rpc.replies() == []


@pytest.mark.parametrize(
    ("body", "error", "cause"),
    [
        ({"action": "image.resize", "payload": {"source_key": "no.png", "max_width": 5, "max_height": 5}}, "SourceNotFound", f"s3://{BUCKET}/no.png does not exist"),
        ({"action": "image.resize", "payload": {"max_width": 5}}, "InvalidRequest", "source_key: Field required"),
        ({"action": "image.crop", "payload": {}}, "UnknownAction", "unknown action 'image.crop'"),
        ({"action": "over_quota", "payload": {}}, "QuotaExceeded", "3 of 3 resizes used this minute"),
        ({"payload": {}}, "InvalidRequest", "the body needs an 'action' string"),
    ],
    ids=["missing-source", "invalid-payload", "unknown-action", "business-error", "no-action"],
)  # fmt: skip
def test_a_task_token_request_that_fails_sends_task_failure(
    rpc: Rpc, body: dict[str, Any], error: str, cause: str
) -> None:
    rpc.send({**body, "task_token": "token-456"})
    assert failures(rpc.serve()) == set()
    operation, failure = rpc.stepfunctions.calls[-1]
    assert operation == "send_task_failure"
    assert failure["taskToken"] == "token-456"
    assert failure["error"] == error
    assert cause in failure["cause"]
    assert rpc.requests.dead_letters() == []


def test_a_task_that_timed_out_stops_the_work_at_the_next_heartbeat(rpc: Rpc) -> None:
    # Given Step Functions has given up on the task (its heartbeat timed out)
    rpc.stepfunctions.fail = {"send_task_heartbeat": "TaskTimedOut"}
    rpc.send({"action": "echo", "payload": {}, "task_token": "token-old"})
    # When it is served Then the record succeeds, no answer is attempted and nothing is dead-lettered
    assert failures(rpc.serve()) == set()
    assert rpc.stepfunctions.operations() == ["send_task_heartbeat"]
    assert rpc.requests.dead_letters() == []


def test_a_throttled_heartbeat_does_not_stop_the_work(rpc: Rpc) -> None:
    rpc.stepfunctions.fail = {"send_task_heartbeat": "ThrottlingException"}
    rpc.send({"action": "echo", "payload": {"x": 1}, "task_token": "token-7"})
    assert failures(rpc.serve()) == set()
    assert rpc.stepfunctions.operations() == ["send_task_heartbeat", "send_task_success"]


def test_a_token_step_functions_refuses_is_dead_lettered(rpc: Rpc) -> None:
    rpc.stepfunctions.fail = {"send_task_success": "InvalidToken"}
    rpc.send({"action": "echo", "payload": {}, "task_token": "forged"})
    assert failures(rpc.serve()) == set()
    [reasons] = dead_letter_reasons(rpc)
    assert reasons["error-type"] == "InvalidTaskToken"


def test_an_answer_to_a_task_already_gone_is_dropped(rpc: Rpc) -> None:
    rpc.stepfunctions.fail = {"send_task_success": "TaskDoesNotExist"}
    rpc.send({"action": "echo", "payload": {}, "task_token": "token-gone"})
    assert failures(rpc.serve()) == set()
    assert rpc.requests.dead_letters() == []


def test_throttled_step_functions_retries_the_record(rpc: Rpc) -> None:
    rpc.stepfunctions.fail = {"send_task_success": "ThrottlingException"}
    message_id = rpc.send({"action": "echo", "payload": {}, "task_token": "token-8"})
    assert failures(rpc.serve()) == {message_id}


def wait_for(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (moto runs executions on a thread)."""
    stop = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < stop, "timed out waiting"
        time.sleep(0.05)
    return result


@pytest.mark.parametrize(
    ("source_key", "status", "expected"),
    [
        ("uploads/dog.png", "SUCCEEDED", {"key": "thumbnails/uploads/dog-40x30.png", "width": 40, "height": 30}),
        ("uploads/missing.png", "FAILED", {"error": "SourceNotFound"}),  # moto drops the cause
    ],
    ids=["success", "failure"],
)  # fmt: skip
def test_a_state_machine_waiting_for_a_task_token_completes_through_the_worker(
    rpc: Rpc, monkeypatch: pytest.MonkeyPatch, source_key: str, status: str, expected: dict[str, Any]
) -> None:
    # Given moto executing state machines, and the task the stack defines: sendMessage.waitForTaskToken
    monkeypatch.setitem(default_user_config["stepfunctions"], "execute_state_machine", True)
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key="uploads/dog.png", Body=png.encode(png.gradient(160, 120))
    )
    definition = {
        "StartAt": "Resize",
        "States": {
            "Resize": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": rpc.requests.url,
                    "MessageBody": {
                        "action": "image.resize",
                        "payload.$": "$",
                        "task_token.$": "$$.Task.Token",
                    },
                },
                "HeartbeatSeconds": 60,
                "TimeoutSeconds": 300,
                "End": True,
            }
        },
    }
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="thumbnails", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    payload = {"source_key": source_key, "max_width": 40, "max_height": 40}
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    # When the worker serves the message the task sent
    event = wait_for(lambda: (e := rpc.requests.receive_event())["Records"] and e)
    response = RpcServer(actions=rpc.actions.registry(), clock=rpc.clock).handle(event, context())
    # Then the execution ends as the worker answered
    assert failures(response) == set()
    done = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d
    )
    assert done["status"] == status
    if status == "SUCCEEDED":
        assert json.loads(done["output"]).items() >= expected.items()
    else:
        assert done["error"] == expected["error"]


# -- the deployed handler and the samples in events/ ---------------------------------------


def test_the_handler_answers_the_sample_batch(rpc: Rpc, event_file, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the sample request (reply queue, correlation id, deadline 10 s after it was sent) and its image
    event = event_file("sqs-image-resize-batch.json")
    request = event_file("rpc-image-resize-request.json")
    [record] = event["Records"]
    assert json.loads(record["body"]) == request
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=request["payload"]["source_key"], Body=png.encode(png.gradient(300, 200))
    )
    handler = importlib.reload(importlib.import_module("functions.image_resize.handler"))
    # When the deployed handler serves it one second after it was sent
    with time_machine.travel(1796032801.0, tick=False):
        response = handler.handler(event, context(name="image-resize-fn"))
        # (read on the same clock: at today's date the reply may be past the queue's retention)
        replies = rpc.replies()
    # Then it is answered on the sample's reply queue with the thumbnail
    assert response == {"batchItemFailures": []}
    [reply] = replies
    assert reply["correlation_id"] == record["messageAttributes"]["correlation_id"]["stringValue"]
    assert reply["body"]["ok"] is True
    assert reply["body"]["result"]["key"] == "thumbnails/uploads/cat-200x133.png"


def test_the_handler_drops_the_sample_when_its_deadline_has_passed(rpc: Rpc, event_file) -> None:
    handler = importlib.reload(importlib.import_module("functions.image_resize.handler"))
    with time_machine.travel(1796032811.0, tick=False):
        response = handler.handler(event_file("sqs-image-resize-batch.json"), context())
        replies = rpc.replies()
    assert response == {"batchItemFailures": []}
    assert replies == []


def test_the_task_token_sample_is_a_valid_request(event_file) -> None:
    body = event_file("image-resize-task-token.json")
    assert set(body) == {"action", "payload", "task_token"}
    assert body["action"] == "image.resize"
    assert set(body["payload"]) == {"source_key", "max_width", "max_height"}
