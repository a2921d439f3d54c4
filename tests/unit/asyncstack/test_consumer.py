"""The consumer framework: partial failures, idempotency, poison pills, backoff, graceful shutdown."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from asyncstack.runtime.consumer import EventConsumer, backoff_seconds
from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.events import EventEnvelope
from shared.events import ORDER_CREATED, OrderCreated
from tests.unit.builders import order_json
from tests.unit.conftest import WorkQueueFixture, context

pytestmark = pytest.mark.unit


class Recorder:
    """A process function that records what it was called with and can be told to fail."""

    def __init__(self, fail_orders: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail_orders = fail_orders or set()

    def __call__(self, envelope: EventEnvelope, order: OrderCreated) -> Mapping[str, Any]:
        self.calls.append(envelope.event_id)
        if order.order_id in self.fail_orders:
            raise TransientError(f"dependency down for {order.order_id}")
        return {"order_id": order.order_id}


def consumer(process: Recorder, **kwargs: Any) -> EventConsumer:
    return EventConsumer(name="unit", accepts={ORDER_CREATED: OrderCreated}, process=process, **kwargs)


def failures(response: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}


def test_only_the_failed_record_is_reported(work_queue: WorkQueueFixture) -> None:
    # Given three orders, the second of which hits a transient failure
    ids = [work_queue.send(order_json(f"e{i}", f"o{i}")) for i in range(3)]
    process = Recorder(fail_orders={"o1"})
    # When the batch is processed
    response = consumer(process).handle(work_queue.receive_event(), context())
    # Then only that record is reported, and the other two took effect
    assert failures(response) == {ids[1]}
    assert process.calls == ["e0", "e1", "e2"]


def test_duplicates_in_one_batch_take_effect_once(work_queue: WorkQueueFixture) -> None:
    # Given the same event delivered twice (two SQS messages, one event_id)
    work_queue.send(order_json("dup", "o1"))
    work_queue.send(order_json("dup", "o1"))
    process = Recorder()
    # When both arrive in one batch
    response = consumer(process).handle(work_queue.receive_event(), context())
    # Then the effect runs once and neither record fails
    assert process.calls == ["dup"]
    assert failures(response) == set()


def test_duplicates_across_invocations_take_effect_once(work_queue: WorkQueueFixture) -> None:
    # Given an event already processed by one invocation (a cold start later: no local cache)
    work_queue.send(order_json("once", "o1"))
    process = Recorder()
    consumer(process).handle(work_queue.receive_event(), context())
    # When SNS redelivers it with a new message id to a fresh execution environment
    work_queue.send(order_json("once", "o1"))
    response = consumer(process).handle(work_queue.receive_event(), context())
    # Then it succeeds without running the effect again
    assert process.calls == ["once"]
    assert failures(response) == set()


def test_a_failed_attempt_is_retried_and_then_takes_effect(work_queue: WorkQueueFixture, monkeypatch) -> None:
    # Given an event whose first attempt fails transiently (no backoff, to receive it again at once)
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    work_queue.send(order_json("flaky", "o1"))
    process = Recorder(fail_orders={"o1"})
    first = consumer(process).handle(work_queue.receive_event(), context())
    # When the dependency recovers and the message comes back
    process.fail_orders.clear()
    second = consumer(process).handle(work_queue.receive_event(), context())
    # Then the idempotency record of the failed attempt did not block the retry
    assert len(failures(first)) == 1
    assert failures(second) == set()
    assert process.calls == ["flaky", "flaky"]


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ('{"event_id": "x", "type": ', "MalformedJson"),
        ('["not", "an", "object"]', "SchemaInvalid"),
        (order_json("bad-qty", quantity=0), "SchemaInvalid"),
        (order_json("x").replace("order.created", "order.teleported"), "UnknownEventType"),
    ],
)
def test_poison_records_go_to_the_dlq_at_once_with_their_reason(
    work_queue: WorkQueueFixture, body: str, error_type: str
) -> None:
    # Given a record that can never be processed, next to a good one
    poison_id = work_queue.send(body, type="order.created")
    work_queue.send(order_json("good"))
    process = Recorder()
    # When the batch is processed (first receive)
    response = consumer(process).handle(work_queue.receive_event(), context())
    # Then it is not retried: it is in the DLQ with why, and the good record went through
    assert failures(response) == set()
    assert process.calls == ["good"]
    [dead] = work_queue.dead_letters()
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert dead["Body"] == body
    assert attributes["error-type"] == error_type
    assert attributes["error-message"]
    assert attributes["original-message-id"] == poison_id
    assert attributes["source-queue-arn"] == work_queue.arn
    assert attributes["type"] == "order.created"  # the original attributes travel with it


def test_same_event_id_with_a_different_payload_is_dead_lettered(work_queue: WorkQueueFixture) -> None:
    # Given an event processed once, then a message reusing its event_id for another order
    work_queue.send(order_json("reused", "o1"))
    process = Recorder()
    consumer(process).handle(work_queue.receive_event(), context())
    work_queue.send(order_json("reused", "o2"))
    # When it arrives
    response = consumer(process).handle(work_queue.receive_event(), context())
    # Then it is refused as a conflicting duplicate, not silently swallowed
    assert failures(response) == set()
    [dead] = work_queue.dead_letters()
    assert dead["MessageAttributes"]["error-type"]["StringValue"] == "ConflictingDuplicate"
    assert process.calls == ["reused"]


@pytest.mark.parametrize(("receive_count", "ceiling"), [(1, 2), (2, 4), (5, 32), (12, 900), (40, 900)])
def test_backoff_is_fully_jittered_below_a_capped_exponential(receive_count: int, ceiling: int) -> None:
    rng = random.Random(7)
    delays = [backoff_seconds(receive_count, base=2, cap=900, rng=rng) for _ in range(500)]
    assert min(delays) >= 0
    assert max(delays) <= ceiling
    assert len(set(delays)) > 1  # jittered, not a fixed delay
    assert max(delays) >= ceiling * 0.8  # and it uses the whole range


def test_a_transient_failure_delays_the_message_by_its_backoff(
    work_queue: WorkQueueFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a backoff that always picks the top of its range (100 s)
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "100")
    monkeypatch.setenv("BACKOFF_MAX_SECONDS", "100")
    monkeypatch.setattr(random, "randint", lambda low, high: high)
    work_queue.send(order_json("slow", "o1"))
    # When the record fails transiently
    consumer(Recorder(fail_orders={"o1"})).handle(work_queue.receive_event(), context())
    # Then the message stays invisible (not back after a 0 s delay), and visible with a 0 s backoff
    assert work_queue.counts() == {"visible": 0, "in_flight": 1}
    assert work_queue.receive_event()["Records"] == []


def test_zero_backoff_makes_the_message_visible_again_at_once(
    work_queue: WorkQueueFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    work_queue.send(order_json("fast", "o1"))
    consumer(Recorder(fail_orders={"o1"})).handle(work_queue.receive_event(), context())
    again = work_queue.receive_event()["Records"]
    assert len(again) == 1
    assert again[0]["attributes"]["ApproximateReceiveCount"] == "2"


def test_the_deadline_margin_stops_processing_and_releases_the_rest(
    work_queue: WorkQueueFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 5 records and a context that falls below the 3 s margin after the second record
    ids = [work_queue.send(order_json(f"d{i}", f"o{i}")) for i in range(5)]
    ctx = context(remaining_seconds=60)
    process = Recorder()
    monkeypatch.setattr(
        ctx, "get_remaining_time_in_millis", lambda: 60_000 if len(process.calls) < 2 else 1_000
    )
    # When the batch is processed
    response = consumer(process).handle(work_queue.receive_event(), ctx)
    # Then the last three are reported as failures without being touched, and are visible again now
    assert process.calls == ["d0", "d1"]
    assert failures(response) == set(ids[2:])
    again = work_queue.receive_event()
    assert {r["messageId"] for r in again["Records"]} == set(ids[2:])


def test_fifo_stops_at_the_first_failure_to_keep_order(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.conftest import make_table, make_work_queue

    queue = make_work_queue("fifo-orders", fifo=True)
    monkeypatch.setenv("QUEUE_URL", queue.url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue.dlq_url)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", make_table("idem-fifo", "id", ttl="expiration"))
    ids = [
        queue.sqs.send_message(
            QueueUrl=queue.url, MessageBody=order_json(f"f{i}", f"o{i}"), MessageGroupId="g1"
        )["MessageId"]
        for i in range(4)
    ]
    process = Recorder(fail_orders={"o1"})
    response = consumer(process, fifo=True).handle(queue.receive_event(), context())
    # The failure and everything after it in the group come back, in order
    assert process.calls == ["f0", "f1"]
    assert failures(response) == set(ids[1:])


def test_fifo_poison_record_is_dead_lettered_into_the_fifo_dlq(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.conftest import make_table, make_work_queue

    queue = make_work_queue("fifo-poison", fifo=True)
    monkeypatch.setenv("QUEUE_URL", queue.url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue.dlq_url)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", make_table("idem-fifo2", "id", ttl="expiration"))
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody="{oops", MessageGroupId="g1")
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody=order_json("ok"), MessageGroupId="g1")
    process = Recorder()
    response = consumer(process, fifo=True).handle(queue.receive_event(), context())
    assert failures(response) == set()
    assert process.calls == ["ok"]
    [dead] = queue.dead_letters()
    assert dead["MessageAttributes"]["error-type"]["StringValue"] == "MalformedJson"


def test_a_consumer_needs_exactly_one_way_to_process() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EventConsumer(name="x", accepts={})
    with pytest.raises(ValueError, match="idempotent=False"):
        EventConsumer(name="x", accepts={}, bulk=object())  # type: ignore[arg-type]


def test_dead_letter_message_keeps_within_the_sqs_attribute_limit(work_queue: WorkQueueFixture) -> None:
    many = {f"attr{i}": str(i) for i in range(9)}
    work_queue.send("{broken", **many)
    consumer(Recorder()).handle(work_queue.receive_event(), context())
    [dead] = work_queue.dead_letters()
    assert len(dead["MessageAttributes"]) == 10
    assert dead["MessageAttributes"]["error-type"]["StringValue"] == "MalformedJson"
    assert json.loads(json.dumps(dead["MessageAttributes"]))  # serialisable as stored


def test_an_event_another_invocation_holds_waits_out_that_invocations_deadline(
    work_queue: WorkQueueFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no backoff at all, and an event whose idempotency record another invocation holds in progress
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    work_queue.send(order_json("held", "o1"))

    def held(envelope: EventEnvelope, order: OrderCreated) -> Mapping[str, Any]:
        raise IdempotencyAlreadyInProgressError("held by another invocation")

    # When it is processed by a function with 30 s left
    response = consumer(held).handle(work_queue.receive_event(), context(remaining_seconds=30))  # type: ignore[arg-type]
    # Then it fails, and stays invisible until the holder's deadline has passed (not back at once,
    # which would spend its receives while the record is still held)
    assert len(failures(response)) == 1
    assert work_queue.counts() == {"visible": 0, "in_flight": 1}
    assert work_queue.receive_event()["Records"] == []
