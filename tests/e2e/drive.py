"""How the e2e tests drive the deployed stack: the events they send, the outage they cause on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from asyncstack.runtime.events import new_envelope
from localcloud.cloud import LocalCloud
from shared.events import ORDER_CREATED, OrderCreated, OrderLine


def order_event(event_id: str, order_id: str, lines: list[OrderLine]) -> str:
    """An order.created envelope as JSON; no lines makes it a schema-invalid (poison) event."""
    order = OrderCreated.model_construct(
        order_id=order_id, customer_id="cus-dash", customer_email="dash@example.com", lines=lines
    )  # fmt: skip
    return new_envelope(ORDER_CREATED, order, source="tests", event_id=event_id).model_dump_json()


def purge_queue(cloud: LocalCloud, queue_url: str) -> None:
    """PurgeQueue, as often as tests need it: SQS allows one a minute per queue, and the local cloud's
    SQS follows its clock, so a purge that comes sooner moves the clock on a minute first."""
    sqs = cloud.client("sqs")
    try:
        sqs.purge_queue(QueueUrl=queue_url)
    except sqs.exceptions.PurgeQueueInProgress:
        cloud.clock.advance(61)
        sqs.purge_queue(QueueUrl=queue_url)


@contextmanager
def inventory_outage(cloud: LocalCloud) -> Iterator[None]:
    """The inventory function misconfigured (a table that does not exist, no backoff between attempts)
    inside the block: every record it takes fails until SQS moves it to the DLQ. Fixed on exit."""
    lambda_ = cloud.client("lambda")
    [function] = [f for f in lambda_.list_functions()["Functions"] if "InventoryWorker" in f["FunctionName"]]
    name = function["FunctionName"]
    good = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    broken = {**good, "INVENTORY_TABLE_NAME": "no-such-table", "BACKOFF_BASE_SECONDS": "0"}
    lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": broken})
    try:
        yield
    finally:
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": good})
