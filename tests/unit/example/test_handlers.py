"""Each deployed handler against the sample batch in events/, with moto behind it."""

from __future__ import annotations

import importlib
from types import ModuleType

import boto3
import pytest

from shared.inventory import InventoryRepository
from tests.unit.conftest import REGION, WorkQueueFixture, context

pytestmark = pytest.mark.unit


def fresh_handler(name: str) -> ModuleType:
    """Import the handler as a cold start would: module state (caches, clients) starts empty."""
    return importlib.reload(importlib.import_module(f"functions.{name}.handler"))


def scan(table: str) -> list[dict]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=table)["Items"]


@pytest.fixture
def stocked(tables: dict[str, str]) -> InventoryRepository:
    repository = InventoryRepository(tables["INVENTORY_TABLE_NAME"])
    repository.put_stock("SKU-RED-MUG", 10)
    repository.put_stock("SKU-TEA-100G", 10)
    return repository


@pytest.mark.parametrize("name", ["inventory", "email", "analytics"])
def test_sample_batch_gives_the_expected_partial_response(
    name: str, work_queue: WorkQueueFixture, stocked: InventoryRepository, tables: dict[str, str], event_file
) -> None:
    # Given the sample batch: two orders, a duplicate, malformed, schema-invalid and unknown-type records
    event = event_file("sqs-order-batch.json")
    expected = event_file("sqs-order-batch.expected.json")
    handler = fresh_handler(name)
    # When the handler processes it
    response = handler.handler(event, context(name=f"{name}-fn"))
    # Then the response and the dead letters are as documented next to the sample
    assert response == expected["response"]
    dead = {
        m["MessageAttributes"]["original-message-id"]["StringValue"]: m["MessageAttributes"]["error-type"][
            "StringValue"
        ]
        for m in work_queue.dead_letters()
    }
    assert dead == expected["dead_lettered"]
    # And each valid event took effect exactly once
    effects = {
        "inventory": lambda: [
            i for i in scan(tables["INVENTORY_TABLE_NAME"]) if i["pk"]["S"].startswith("reservation#")
        ],
        "email": lambda: scan(tables["OUTBOX_TABLE_NAME"]),
        "analytics": lambda: scan(tables["ANALYTICS_TABLE_NAME"]),
    }[name]()
    assert len(effects) == expected["effects"]


def test_inventory_handler_reserves_stock_once_across_redeliveries(
    work_queue: WorkQueueFixture, stocked: InventoryRepository, event_file
) -> None:
    # Given the sample batch processed once
    event = event_file("sqs-order-batch.json")
    fresh_handler("inventory").handler(event, context())
    # When the whole batch is delivered again to a new execution environment
    fresh_handler("inventory").handler(event, context())
    # Then stock went down once per order: 2 mugs and 1 tea for evt-0001, the same for evt-0002
    assert stocked.available("SKU-RED-MUG") == 10 - 2 - 2
    assert stocked.available("SKU-TEA-100G") == 10 - 1 - 1


def test_email_handler_sends_one_confirmation_per_order(
    work_queue: WorkQueueFixture, tables: dict[str, str], event_file
) -> None:
    event = event_file("sqs-order-batch.json")
    fresh_handler("email").handler(event, context())
    fresh_handler("email").handler(event, context())
    outbox = scan(tables["OUTBOX_TABLE_NAME"])
    assert sorted(item["subject"]["S"] for item in outbox) == [
        "Order ord-0001 confirmed",
        "Order ord-0002 confirmed",
    ]
    assert {item["to"]["S"] for item in outbox} == {"ada@example.com"}
