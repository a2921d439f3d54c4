"""Producer side of the order pipeline: publish ``order.created`` events in batches."""

from __future__ import annotations

from collections.abc import Iterable

from asyncstack.runtime.events import EventEnvelope, new_envelope
from asyncstack.runtime.publisher import BatchPublisher, EntryResult, OutgoingMessage
from asyncstack.runtime.settings import load
from shared.config import OrdersSettings
from shared.events import ORDER_CREATED, OrderCreated

SOURCE = "asyncstack.orders"


def event_message(envelope: EventEnvelope) -> OutgoingMessage:
    """The SNS message for an event; ``type`` is a message attribute so subscriptions can filter on it."""
    return OutgoingMessage(body=envelope.model_dump_json(), attributes={"type": envelope.type})


def order_created(order: OrderCreated, *, event_id: str | None = None) -> EventEnvelope:
    return new_envelope(ORDER_CREATED, order, source=SOURCE, event_id=event_id)


def publish_order_created(
    orders: Iterable[OrderCreated | EventEnvelope],
    *,
    topic_arn: str | None = None,
    publisher: BatchPublisher | None = None,
) -> list[EntryResult]:
    """Publish each order (or ready-made envelope) to the orders topic, ten per ``PublishBatch``.

    Returns one result per order, in order; failed entries were retried with backoff already.
    """
    if publisher is None:
        arn = topic_arn or load(OrdersSettings).orders_topic_arn  # the stack output OrdersTopicArn
        publisher = BatchPublisher.for_topic(arn, max_interval_seconds=None)
    with publisher:
        ids = [
            publisher.add(event_message(item if isinstance(item, EventEnvelope) else order_created(item)))
            for item in orders
        ]
    by_id = {result.entry_id: result for result in publisher.results}
    return [by_id[entry_id] for entry_id in ids]
