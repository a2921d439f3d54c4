"""Unit tests for the producer-side batch publisher (asyncstack/runtime/publisher.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from asyncstack.runtime import aws as aws_module
from asyncstack.runtime import publisher as publisher_module
from asyncstack.runtime.publisher import (
    BatchEntry,
    BatchOutcome,
    BatchPublisher,
    EntryFailure,
    EntryResult,
    OutgoingMessage,
    PublishError,
    message_size,
)

pytestmark = pytest.mark.unit

REGION = "us-east-1"
KIB = 1024


def no_sleep(_seconds: float) -> None:
    """Retries must not slow the suite down."""


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns the last value (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class FakeSender:
    """A ``send_batch`` double: records every call and answers from a script.

    ``script`` is called with (call_index, entries) and returns an outcome or raises; by default
    every entry succeeds with message id ``m-<entry id>``.
    """

    def __init__(
        self,
        script: Callable[[int, Sequence[BatchEntry]], BatchOutcome] | None = None,
    ) -> None:
        self.calls: list[list[BatchEntry]] = []
        self._script = script
        self._lock = threading.Lock()

    def __call__(self, entries: Sequence[BatchEntry]) -> BatchOutcome:
        with self._lock:
            index = len(self.calls)
            self.calls.append(list(entries))
        if self._script is not None:
            return self._script(index, entries)
        return all_ok(entries)

    def call_ids(self) -> list[list[str]]:
        return [[entry.entry_id for entry in call] for call in self.calls]


def all_ok(entries: Sequence[BatchEntry]) -> BatchOutcome:
    return BatchOutcome({entry.entry_id: f"m-{entry.entry_id}" for entry in entries}, [])


def client_error(code: str, status: int, operation: str = "SendMessageBatch") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


# -- moto: real request shapes against emulated SQS / SNS ------------------------------------------


def count_calls(client: Any, operation: str) -> list[int]:
    """Record the number of entries of every ``operation`` call the client makes."""
    sizes: list[int] = []
    entries_key = "Entries" if operation == "SendMessageBatch" else "PublishBatchRequestEntries"

    def record(params: Mapping[str, Any], **_kwargs: Any) -> None:
        sizes.append(len(params[entries_key]))

    service = client.meta.service_model.endpoint_prefix
    client.meta.events.register(f"provide-client-params.{service}.{operation}", record)
    return sizes


def drain(sqs: Any, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Receive until ``expected`` messages arrived or the queue stays empty."""
    messages: list[dict[str, Any]] = []
    for _ in range(expected + 5):
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
        if len(messages) >= expected:
            break
    return messages


def test_sqs_25_messages_go_out_as_10_10_5_and_all_arrive(aws: None) -> None:
    # Given a queue and a publisher on a moto SQS client whose calls we count
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    calls = count_calls(sqs, "SendMessageBatch")
    publisher = BatchPublisher.for_queue(queue_url, client=sqs, max_interval_seconds=None)
    bodies = [json.dumps({"order": i}) for i in range(25)]

    # When 25 messages are added and the publisher is closed
    ids = [publisher.add(OutgoingMessage(body, attributes={"kind": "order"})) for body in bodies]
    publisher.close()

    # Then three batch calls of 10, 10 and 5 were made, every result is ok, and every body arrived
    assert calls == [10, 10, 5]
    assert ids == [str(i) for i in range(25)]
    assert [r.entry_id for r in publisher.results] == ids
    assert all(r.ok and r.message_id and r.attempts == 1 for r in publisher.results)
    received = drain(sqs, queue_url, expected=25)
    assert sorted(m["Body"] for m in received) == sorted(bodies)
    assert {m["MessageAttributes"]["kind"]["StringValue"] for m in received} == {"order"}
    assert {r.message_id for r in publisher.results} == {m["MessageId"] for m in received}


def test_sqs_client_is_created_lazily_on_first_send(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a queue and a publisher built without a client, with boto3 client creation counted
    queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="lazy")["QueueUrl"]
    created: list[str] = []
    real_client: Callable[..., Any] = boto3.session.Session.client

    def counting_client(session: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        created.append(service)
        return real_client(session, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)
    publisher = BatchPublisher.for_queue(queue_url, max_interval_seconds=None)

    # When a message is only buffered, no client exists yet
    publisher.add("hello")
    assert created == []

    # Then flushing creates exactly one SQS client and the message arrives
    results = publisher.flush()
    publisher.add("again")
    publisher.close()
    assert created == ["sqs"]
    assert [r.ok for r in results] == [True]
    received = drain(boto3.client("sqs", region_name=REGION), queue_url, expected=2)
    assert sorted(m["Body"] for m in received) == ["again", "hello"]


def test_sns_publish_of_12_arrives_in_subscribed_queue(aws: None) -> None:
    # Given a topic with a raw-delivery queue subscription
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="events")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="events-sub")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    calls = count_calls(sns, "PublishBatch")
    bodies = [f"event-{i}" for i in range(12)]

    # When 12 messages are published through the context manager
    with BatchPublisher.for_topic(topic_arn, client=sns, max_interval_seconds=None) as publisher:
        for body in bodies:
            publisher.add(OutgoingMessage(body, attributes={"source": "tests"}))

    # Then two PublishBatch calls were made and all 12 reached the subscribed queue
    assert calls == [10, 2]
    assert len(publisher.results) == 12
    assert all(r.ok and r.message_id for r in publisher.results)
    received = drain(sqs, queue_url, expected=12)
    assert sorted(m["Body"] for m in received) == sorted(bodies)
    assert {m["MessageAttributes"]["source"]["StringValue"] for m in received} == {"tests"}


def test_sqs_fifo_fields_reach_the_queue(aws: None) -> None:
    # Given a FIFO queue
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]

    # When two messages of one group are sent, the second with the first one's deduplication id
    with BatchPublisher.for_queue(queue_url, client=sqs, max_interval_seconds=None) as publisher:
        publisher.add(OutgoingMessage("first", group_id="g1", deduplication_id="d1"))
        publisher.add(OutgoingMessage("second", group_id="g1", deduplication_id="d2"))

    # Then both arrive in order, in their group
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]
    assert [m["Body"] for m in received] == ["first", "second"]
    assert {m["Attributes"]["MessageGroupId"] for m in received} == {"g1"}


# -- request shapes and response parsing of the client adapters (botocore Stubber) ---------------


@pytest.fixture
def dummy_creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_sqs_request_shape_and_per_entry_failures(dummy_creds: None) -> None:
    # Given a stubbed SQS client that fails entry 1 permanently and entry 2 transiently once
    sqs = boto3.client("sqs", region_name=REGION)
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    stub = Stubber(sqs)
    stub.add_response(
        "send_message_batch",
        {
            "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
            "Failed": [
                {"Id": "1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad"},
                {"Id": "2", "SenderFault": False, "Code": "InternalError", "Message": "oops"},
            ],
        },
        {
            "QueueUrl": url,
            "Entries": [
                {
                    "Id": "0",
                    "MessageBody": "a",
                    "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
                    "DelaySeconds": 30,
                },
                {"Id": "1", "MessageBody": "b"},
                {"Id": "2", "MessageBody": "c", "MessageGroupId": "g", "MessageDeduplicationId": "d"},
            ],
        },
    )
    stub.add_response(
        "send_message_batch",
        {"Successful": [{"Id": "2", "MessageId": "m2", "MD5OfMessageBody": "x"}], "Failed": []},
        {
            "QueueUrl": url,
            "Entries": [
                {"Id": "2", "MessageBody": "c", "MessageGroupId": "g", "MessageDeduplicationId": "d"}
            ],
        },
    )
    publisher = BatchPublisher.for_queue(url, client=sqs, max_interval_seconds=None, sleep=no_sleep)

    # When three messages are flushed
    with stub:
        publisher.add(OutgoingMessage("a", attributes={"k": "v"}, delay_seconds=30))
        publisher.add("b")
        publisher.add(OutgoingMessage("c", group_id="g", deduplication_id="d"))
        results = publisher.close()
        stub.assert_no_pending_responses()

    # Then the permanent failure is reported and the transient one succeeded on the retry
    assert results == [
        EntryResult("0", True, "m0", None, None, 1),
        EntryResult("1", False, None, "InvalidParameterValue", "bad", 1),
        EntryResult("2", True, "m2", None, None, 2),
    ]


def test_sns_request_shape(dummy_creds: None) -> None:
    # Given a stubbed SNS client expecting the PublishBatch entry format
    sns = boto3.client("sns", region_name=REGION)
    arn = "arn:aws:sns:us-east-1:123456789012:t.fifo"
    stub = Stubber(sns)
    stub.add_response(
        "publish_batch",
        {"Successful": [{"Id": "0", "MessageId": "m0"}], "Failed": []},
        {
            "TopicArn": arn,
            "PublishBatchRequestEntries": [
                {
                    "Id": "0",
                    "Message": "hello",
                    "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
                    "MessageGroupId": "g",
                    "MessageDeduplicationId": "d",
                }
            ],
        },
    )

    # When one message is published
    with stub, BatchPublisher.for_topic(arn, client=sns, max_interval_seconds=None) as publisher:
        publisher.add(OutgoingMessage("hello", attributes={"k": "v"}, group_id="g", deduplication_id="d"))

    # Then it was sent in the expected shape and reported ok
    stub.assert_no_pending_responses()
    assert publisher.results == [EntryResult("0", True, "m0", None, None, 1)]


# -- chunking -------------------------------------------------------------------------------------


def test_batches_are_split_by_byte_size() -> None:
    # Given ~100 KiB messages and the 256 KiB batch limit
    sender = FakeSender()
    publisher = BatchPublisher(send_batch=sender, max_batch_bytes=262_144, max_interval_seconds=None)
    bodies = [chr(ord("a") + i) * (100 * KIB) for i in range(5)]

    # When five of them are added and flushed
    for body in bodies:
        publisher.add(body)
    publisher.close()

    # Then no batch holds more than two of them, none exceeds the limit, and nothing is lost
    assert [len(call) for call in sender.calls] == [2, 2, 1]
    for call in sender.calls:
        assert sum(message_size(entry.message) for entry in call) <= 262_144
    assert [entry.message.body for call in sender.calls for entry in call] == bodies


def test_attributes_count_towards_the_byte_limit() -> None:
    # Given a limit that fits two bare bodies but not two bodies with attributes
    sender = FakeSender()
    publisher = BatchPublisher(send_batch=sender, max_batch_bytes=200, max_interval_seconds=None)
    message = OutgoingMessage("x" * 90, attributes={"name": "v" * 10})  # 90 + 4 + 6 + 10 = 110 bytes

    # When two such messages are added
    publisher.add(message)
    publisher.add(message)
    publisher.close()

    # Then they were sent separately
    assert message_size(message) == 110
    assert [len(call) for call in sender.calls] == [1, 1]


def test_utf8_bytes_not_characters_are_counted() -> None:
    # Given a limit of 10 bytes and a 4-character body that is 12 bytes in UTF-8
    publisher = BatchPublisher(send_batch=FakeSender(), max_batch_bytes=10, max_interval_seconds=None)

    # When / Then it is refused as oversize
    with pytest.raises(PublishError, match="12 bytes"):
        publisher.add("€€€€")


def test_max_entries_flushes_without_waiting() -> None:
    # Given a publisher with batches of 3 and no timer
    sender = FakeSender()
    publisher = BatchPublisher(send_batch=sender, max_entries=3, max_interval_seconds=None)

    # When seven messages are added (no flush yet)
    for i in range(7):
        publisher.add(f"m{i}")

    # Then two full batches already went out and one message is still buffered
    assert sender.call_ids() == [["0", "1", "2"], ["3", "4", "5"]]
    assert [r.entry_id for r in publisher.flush()] == ["6"]


# -- retries --------------------------------------------------------------------------------------


def test_only_failed_entries_are_retried() -> None:
    # Given a sender that fails entries 2 and 5 transiently on the first call only
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        if index == 0:
            failed = [EntryFailure(i, "InternalError", "try again", False) for i in ("2", "5")]
            ok = {e.entry_id: f"m-{e.entry_id}" for e in entries if e.entry_id not in {"2", "5"}}
            return BatchOutcome(ok, failed)
        return all_ok(entries)

    sender = FakeSender(script)
    sleeps: list[float] = []
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=sleeps.append)

    # When ten messages are added (a full batch)
    for i in range(10):
        publisher.add(f"m{i}")

    # Then the second call carried exactly the failed entries, with their original bodies
    assert len(sender.calls) == 2
    assert [(e.entry_id, e.message.body) for e in sender.calls[1]] == [("2", "m2"), ("5", "m5")]
    results = publisher.results
    assert all(r.ok for r in results)
    assert {r.entry_id: r.attempts for r in results} == {str(i): (2 if i in (2, 5) else 1) for i in range(10)}
    assert results[2].message_id == "m-2"
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.05


def test_sender_fault_is_permanent_and_not_retried() -> None:
    # Given a sender that rejects entry 1 as the sender's fault
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        ok = {e.entry_id: "m" for e in entries if e.entry_id != "1"}
        return BatchOutcome(ok, [EntryFailure("1", "InvalidMessageContents", "bad body", True)])

    sender = FakeSender(script)
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=no_sleep)

    # When three messages are flushed
    for i in range(3):
        publisher.add(f"m{i}")
    results = publisher.flush()

    # Then there was one call only and entry 1 is reported failed with the service's code and message
    assert len(sender.calls) == 1
    assert results[1] == EntryResult("1", False, None, "InvalidMessageContents", "bad body", 1)
    assert [r.ok for r in results] == [True, False, True]


def test_exhausted_retries_report_failure_with_bounded_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an entry that always fails transiently, and jitter pinned to its upper bound
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        ok = {e.entry_id: "m" for e in entries if e.entry_id != "0"}
        return BatchOutcome(ok, [EntryFailure("0", "ServiceUnavailable", "busy", False)])

    monkeypatch.setattr(publisher_module.random, "uniform", lambda low, high: high)
    sender = FakeSender(script)
    sleeps: list[float] = []
    publisher = BatchPublisher(
        send_batch=sender,
        max_interval_seconds=None,
        max_attempts=4,
        backoff_base_seconds=0.05,
        backoff_max_seconds=0.15,
        sleep=sleeps.append,
    )

    # When two messages are flushed
    publisher.add("doomed")
    publisher.add("fine")
    results = publisher.flush()

    # Then the failing entry was sent max_attempts times, alone after the first call, and reported
    assert sender.call_ids() == [["0", "1"], ["0"], ["0"], ["0"]]
    assert results == [
        EntryResult("0", False, None, "ServiceUnavailable", "busy", 4),
        EntryResult("1", True, "m", None, None, 1),
    ]
    # And the backoff doubled from the base and was capped, with no sleep after the last attempt
    assert sleeps == pytest.approx([0.05, 0.10, 0.15])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (client_error("ThrottlingException", 400), "ThrottlingException"),
        (client_error("Weird", 503), "Weird"),
        (EndpointConnectionError(endpoint_url="https://sqs.example"), "EndpointConnectionError"),
    ],
    ids=["throttled", "5xx", "unreachable"],
)
def test_a_failed_whole_call_is_not_retried_by_the_publisher(error: Exception, code: str) -> None:
    # Given a sender whose call fails for a reason a retry might fix (the SDK client retried it already)
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        raise error

    sender = FakeSender(script)
    sleeps: list[float] = []
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=sleeps.append)

    # When two messages are flushed
    publisher.add("a")
    publisher.add("b")
    results = publisher.flush()

    # Then there was one call, no backoff, and each entry is reported failed with the call's error
    assert sender.call_ids() == [["0", "1"]]
    assert sleeps == []
    assert [(r.ok, r.error_code, r.attempts) for r in results] == [(False, code, 1), (False, code, 1)]


def test_a_resend_of_failed_entries_that_fails_as_a_whole_ends_their_retries() -> None:
    # Given a call that fails entry 1 transiently, then a throttled resend
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        if index == 0:
            return BatchOutcome({"0": "m0"}, [EntryFailure("1", "InternalError", "try again", False)])
        raise client_error("ThrottlingException", 400)

    sender = FakeSender(script)
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=no_sleep)

    # When two messages are flushed
    publisher.add("a")
    publisher.add("b")
    results = publisher.flush()

    # Then entry 1 was resent once, and reported with the resend's error
    assert sender.call_ids() == [["0", "1"], ["1"]]
    assert results == [
        EntryResult("0", True, "m0", None, None, 1),
        EntryResult("1", False, None, "ThrottlingException", "ThrottlingException happened", 2),
    ]


class _Body:
    """The raw stream of a canned HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


def test_one_layer_of_retries_for_whole_calls_the_sdks(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the framework's SQS client (moto behind it, in case), every HTTP request of which answers
    # 500, an error the SDK retries
    sent: list[str] = []

    def fail(request: Any, **_kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        body = json.dumps({"__type": "com.amazonaws.sqs#InternalError", "message": "down"}).encode()
        headers = HTTPHeaders()
        headers["x-amzn-query-error"] = "InternalError;Receiver"
        return AWSResponse(request.url, 500, headers, _Body(body))

    sdk_sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=sdk_sleeps.append))
    sqs = aws_module.client("sqs")
    sqs.meta.events.register("before-send.sqs.SendMessageBatch", fail)
    retries = sqs.meta.config.retries
    sdk_attempts = retries.get("total_max_attempts") or 1 + retries["max_attempts"]  # botocore: retries + 1
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    publisher = BatchPublisher.for_queue(url, client=sqs, max_interval_seconds=None, sleep=no_sleep)

    # When ten messages are added (a full batch: sent at once)
    for i in range(10):
        publisher.add(f"m{i}")
    results = publisher.results

    # Then the one batch call made the SDK's attempts only (SDK_MAX_ATTEMPTS in all, the first included), not 5 x that
    assert sdk_attempts == aws_module.SDK_MAX_ATTEMPTS == 3
    assert len(sent) == sdk_attempts
    assert len(sdk_sleeps) == sdk_attempts - 1
    # And every entry is reported failed once, with the service's error
    assert [(r.ok, r.error_code, r.attempts) for r in results] == [(False, "InternalError", 1)] * 10


@pytest.mark.parametrize(
    "code", ["AWS.SimpleQueueService.NonExistentQueue", "AccessDenied", "InvalidParameter"]
)
def test_non_retryable_whole_call_error_is_reported_per_entry(code: str) -> None:
    # Given a sender whose call fails for a reason retrying cannot fix
    def script(index: int, entries: Sequence[BatchEntry]) -> BatchOutcome:
        raise client_error(code, 400)

    sender = FakeSender(script)
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=no_sleep)

    # When two messages are flushed
    publisher.add("a")
    publisher.add("b")
    results = publisher.flush()

    # Then nothing is raised, there was no retry, and each entry carries the error
    assert len(sender.calls) == 1
    assert [(r.entry_id, r.ok, r.error_code, r.attempts) for r in results] == [
        ("0", False, code, 1),
        ("1", False, code, 1),
    ]


def test_entry_missing_from_response_is_reported_not_ok() -> None:
    # Given a sender whose response forgets entry 1
    sender = FakeSender(lambda index, entries: BatchOutcome({"0": "m0"}, []))
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None, sleep=no_sleep)

    # When two messages are flushed
    publisher.add("a")
    publisher.add("b")
    results = publisher.flush()

    # Then entry 1 still gets a (failed) result
    assert [(r.entry_id, r.ok) for r in results] == [("0", True), ("1", False)]
    assert results[1].error_code == "MissingFromResponse"


# -- interval flush and lifecycle -----------------------------------------------------------------


def timer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("batch-publisher-timer")}


def test_interval_flush_sends_without_explicit_flush() -> None:
    # Given a publisher with a 50 ms interval and no timer thread yet
    sender = FakeSender()
    before = timer_threads()
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=0.05)
    assert timer_threads() == before

    # When one message is added and nobody calls flush
    entry_id = publisher.add("tick")
    started = timer_threads() - before

    # Then the timer (started lazily by add) sends it
    assert len(started) == 1
    assert wait_until(lambda: [r.entry_id for r in publisher.results] == [entry_id])
    assert sender.call_ids() == [[entry_id]]
    assert publisher.results[0].ok

    # And close() stops the timer thread
    publisher.close()
    assert not any(t.is_alive() for t in started)


def test_interval_timer_disabled_with_none() -> None:
    # Given a publisher without a timer
    sender = FakeSender()
    before = timer_threads()
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None)

    # When a message is added
    publisher.add("a")

    # Then no timer thread exists and nothing was sent until flush
    assert timer_threads() == before
    assert sender.calls == []
    assert [r.ok for r in publisher.flush()] == [True]


def test_context_manager_flushes_on_exit() -> None:
    # Given a publisher used as a context manager
    sender = FakeSender()

    # When messages are added inside the block
    with BatchPublisher(send_batch=sender, max_interval_seconds=10) as publisher:
        publisher.add("a")
        publisher.add("b")
        assert sender.calls == []

    # Then leaving the block sent them
    assert sender.call_ids() == [["0", "1"]]
    assert [r.ok for r in publisher.results] == [True, True]


def test_context_manager_flushes_when_body_raises() -> None:
    # Given a publisher used as a context manager
    sender = FakeSender()

    # When the block raises after buffering a message
    with pytest.raises(RuntimeError, match="boom"), BatchPublisher(send_batch=sender) as publisher:
        publisher.add("buffered")
        raise RuntimeError("boom")

    # Then the buffered message was still sent, and the exception propagated
    assert [[e.message.body for e in call] for call in sender.calls] == [["buffered"]]


def test_add_after_close_is_refused() -> None:
    # Given a closed publisher
    publisher = BatchPublisher(send_batch=FakeSender(), max_interval_seconds=None)
    publisher.close()

    # When / Then adding raises
    with pytest.raises(PublishError, match="closed"):
        publisher.add("late")


def test_concurrent_adds_lose_and_duplicate_nothing() -> None:
    # Given a publisher shared by 8 threads, with a short timer also flushing
    sender = FakeSender()
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=0.001)
    per_thread = 50
    ids: list[str] = []
    ids_lock = threading.Lock()

    def produce(worker: int) -> None:
        for i in range(per_thread):
            entry_id = publisher.add(f"{worker}-{i}")
            with ids_lock:
                ids.append(entry_id)

    # When they all add at once and the publisher is closed
    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    publisher.close()

    # Then every message was sent exactly once, in batches of at most 10, with unique ids
    sent = [entry.message.body for call in sender.calls for entry in call]
    expected = {f"{w}-{i}" for w in range(8) for i in range(per_thread)}
    assert len(sent) == len(expected) and set(sent) == expected
    assert all(1 <= len(call) <= 10 for call in sender.calls)
    assert sorted(ids, key=int) == [str(i) for i in range(8 * per_thread)]
    assert [r.entry_id for r in publisher.results] == [str(i) for i in range(8 * per_thread)]
    assert all(r.ok for r in publisher.results)
    # And each producer's messages left in the order it added them
    for w in range(8):
        mine = [body for body in sent if body.startswith(f"{w}-")]
        assert mine == [f"{w}-{i}" for i in range(per_thread)]


# -- input validation -----------------------------------------------------------------------------


def test_oversize_single_message_is_refused() -> None:
    # Given a publisher with the default 256 KiB limit
    sender = FakeSender()
    publisher = BatchPublisher(send_batch=sender, max_interval_seconds=None)

    # When / Then a body one byte over the limit raises, and nothing is buffered or sent
    with pytest.raises(PublishError, match="262145 bytes"):
        publisher.add("x" * 262_145)
    assert publisher.flush() == []
    assert sender.calls == []
    # And a message of exactly the limit is accepted
    publisher.add("x" * 262_144)
    assert sender.calls == []
    assert [r.ok for r in publisher.flush()] == [True]


def test_delay_seconds_is_refused_for_sns() -> None:
    # Given an SNS publisher (no client is needed to validate)
    publisher = BatchPublisher.for_topic("arn:aws:sns:us-east-1:123456789012:t", max_interval_seconds=None)

    # When / Then a delayed message is refused as a ValueError
    with pytest.raises(ValueError, match="delay_seconds"):
        publisher.add(OutgoingMessage("x", delay_seconds=5))


@pytest.mark.parametrize("delay", [-1, 901, True])
def test_bad_sqs_delay_is_refused(delay: int) -> None:
    publisher = BatchPublisher.for_queue("https://sqs.us-east-1.amazonaws.com/1/q", max_interval_seconds=None)
    with pytest.raises(PublishError, match="delay_seconds"):
        publisher.add(OutgoingMessage("x", delay_seconds=delay))


@pytest.mark.parametrize(
    "options",
    [
        {"max_entries": 11},
        {"max_entries": 0},
        {"max_batch_bytes": 0},
        {"max_attempts": 0},
        {"max_interval_seconds": 0},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(PublishError):
        BatchPublisher(send_batch=FakeSender(), **options)


@pytest.mark.parametrize(
    "message",
    [
        OutgoingMessage(""),
        OutgoingMessage("x", attributes={"": "v"}),
        OutgoingMessage("x", attributes={"AWS.reserved": "v"}),
        OutgoingMessage("x", attributes={"k": ""}),
        OutgoingMessage("x", attributes={f"k{i}": "v" for i in range(11)}),
        OutgoingMessage("bad \x00 char"),
        OutgoingMessage("lone \ud800 surrogate"),
    ],
)
def test_messages_that_would_sink_the_whole_batch_are_refused(message: OutgoingMessage) -> None:
    # Given an SQS publisher
    publisher = BatchPublisher.for_queue(
        "https://sqs.us-east-1.amazonaws.com/1/q", client=None, max_interval_seconds=None
    )

    # When / Then the message is refused at add() instead of failing its batchmates later
    with pytest.raises(PublishError):
        publisher.add(message)


def test_fifo_targets_require_a_group_id() -> None:
    queue = BatchPublisher.for_queue(
        "https://sqs.us-east-1.amazonaws.com/1/q.fifo", max_interval_seconds=None
    )
    topic = BatchPublisher.for_topic("arn:aws:sns:us-east-1:1:t.fifo", max_interval_seconds=None)
    for publisher in (queue, topic):
        with pytest.raises(PublishError, match="group_id"):
            publisher.add("no group")
