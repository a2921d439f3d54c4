"""Domain logic behind the workers: inventory reservations, the email outbox, analytics bulk writes."""

from __future__ import annotations

from typing import Any
from unittest import mock

import boto3
import pytest

from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.events import EventEnvelope
from shared.analytics import AnalyticsSink
from shared.events import OrderCreated
from shared.inventory import InventoryRepository
from shared.mailer import OutboxEmailProvider, confirmation_for
from tests.unit.builders import order_envelope
from tests.unit.conftest import REGION

pytestmark = pytest.mark.unit


def decoded(event_id: str, **kwargs: Any) -> tuple[EventEnvelope, OrderCreated]:
    envelope = EventEnvelope.model_validate(order_envelope(event_id, **kwargs))
    return envelope, OrderCreated.model_validate(envelope.data)


@pytest.fixture
def inventory(tables: dict[str, str]) -> InventoryRepository:
    repository = InventoryRepository(tables["INVENTORY_TABLE_NAME"])
    repository.put_stock("SKU-A", 5)
    return repository


def test_reservation_decrements_stock_and_is_recorded(inventory: InventoryRepository) -> None:
    _envelope, order = decoded("e1", quantity=3)
    assert inventory.reserve("e1", order).status == "reserved"
    assert inventory.available("SKU-A") == 2
    assert inventory.reservation(order.order_id)["status"]["S"] == "reserved"


def test_a_replayed_reservation_does_not_reserve_twice(inventory: InventoryRepository) -> None:
    _envelope, order = decoded("e1", quantity=3)
    inventory.reserve("e1", order)
    assert inventory.reserve("e1", order).status == "already_reserved"
    assert inventory.available("SKU-A") == 2


def test_insufficient_stock_is_recorded_without_touching_stock(inventory: InventoryRepository) -> None:
    _envelope, order = decoded("e1", quantity=6)
    result = inventory.reserve("e1", order)
    assert result.status == "insufficient_stock"
    assert "SKU-A" in result.detail
    assert inventory.available("SKU-A") == 5
    assert inventory.reservation(order.order_id)["status"]["S"] == "insufficient_stock"
    # and a replay of the same order stays rejected, it does not reserve later stock
    inventory.put_stock("SKU-A", 50)
    assert inventory.reserve("e1", order).status == "already_reserved"
    assert inventory.available("SKU-A") == 50


def test_unknown_sku_counts_as_insufficient_stock(inventory: InventoryRepository) -> None:
    _envelope, order = decoded("e1", sku="SKU-NOPE")
    assert inventory.reserve("e1", order).status == "insufficient_stock"


def test_a_cancelled_transaction_without_a_failed_condition_is_transient(
    inventory: InventoryRepository,
) -> None:
    from botocore.exceptions import ClientError

    _envelope, order = decoded("e1")
    conflict = ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
            "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
        },
        "TransactWriteItems",
    )
    failing = mock.Mock(transact_write_items=mock.Mock(side_effect=conflict))
    with pytest.raises(TransientError):
        InventoryRepository(inventory.table, client=failing).reserve("e1", order)


def test_outbox_provider_sends_a_message_id_once(tables: dict[str, str]) -> None:
    provider = OutboxEmailProvider(tables["OUTBOX_TABLE_NAME"])
    message = confirmation_for(*decoded("e1", quantity=2))
    assert provider.send(message) is True
    assert provider.send(message) is False
    assert "Total: 10.00 EUR" in message.body


def test_analytics_rows_are_written_25_per_call_and_keyed_by_event(tables: dict[str, str]) -> None:
    real = boto3.client("dynamodb", region_name=REGION)
    spy = mock.Mock(wraps=real)
    sink = AnalyticsSink(tables["ANALYTICS_TABLE_NAME"], client=spy)
    events = [decoded(f"e{i}") for i in range(60)] + [decoded("e0")]  # one duplicate
    assert sink.write(events) == {}
    sizes = [
        len(call.kwargs["RequestItems"][tables["ANALYTICS_TABLE_NAME"]])
        for call in spy.batch_write_item.call_args_list
    ]
    assert sizes == [25, 25, 10]
    assert real.scan(TableName=tables["ANALYTICS_TABLE_NAME"], Select="COUNT")["Count"] == 60


def test_analytics_retries_unprocessed_items_then_reports_them(tables: dict[str, str]) -> None:
    table = tables["ANALYTICS_TABLE_NAME"]
    events = [decoded(f"e{i}") for i in range(3)]
    stuck = {"PutRequest": {"Item": {"event_id": {"S": "e2"}}}}
    client = mock.Mock()
    client.batch_write_item.return_value = {"UnprocessedItems": {table: [stuck]}}
    sink = AnalyticsSink(table, client=client, max_attempts=3, sleep=lambda _: None)
    assert sink.write(events) == {"e2": "unprocessed after retries"}
    assert client.batch_write_item.call_count == 3
    retried = client.batch_write_item.call_args_list[1].kwargs["RequestItems"][table]
    assert retried == [stuck]  # only the unprocessed item is sent again


def test_reservation_count_counts_reserved_and_refused_orders_but_not_stock(
    inventory: InventoryRepository,
) -> None:
    inventory.reserve("e1", decoded("e1", quantity=1)[1])
    inventory.reserve("e2", decoded("e2", quantity=99)[1])  # refused: recorded all the same
    assert inventory.reservation_count() == 2
