"""The order pipeline deployed with the CDK CLI and driven from outside: the AWS CLI, a poison event,
and a redrive after a fix (the reconciled fan-out itself is the demo's pub-sub scenario, test_demo.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from demo.pipeline import build_events, matches
from localcloud.__main__ import main as localcloud_cli
from localcloud.cloud import LocalCloud
from shared.inventory import InventoryRepository
from tests.e2e.drive import inventory_outage, purge_queue

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[2] / "events"
AWS_CLI = Path(sys.executable).parent / "aws"


def _order_event(event_id: str, order_id: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "order-created.json").read_text())
    event["event_id"] = event_id
    event["data"]["order_id"] = order_id
    return event


def _dead_letters(cloud: LocalCloud, queue_url: str) -> list[dict[str, Any]]:
    got = cloud.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    )
    return list(got.get("Messages", []))


def test_the_aws_cli_drives_every_consumer(cloud: LocalCloud, tmp_path: Path) -> None:
    # Given an order event in a file, and nothing but the AWS CLI pointed at the local endpoint
    outputs = cloud.stack_outputs()
    event_file = tmp_path / "order.json"
    event_file.write_text(json.dumps(_order_event("evt-cli-1", "ord-cli-1")))
    InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb")).put_stock(
        "SKU-RED-MUG", 10
    )
    InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb")).put_stock(
        "SKU-TEA-100G", 10
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "any",
        "AWS_SECRET_ACCESS_KEY": "any",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # When `aws sns publish` sends it with its type attribute
    published = subprocess.run(
        [str(AWS_CLI), "--endpoint-url", cloud.endpoint, "sns", "publish", "--topic-arn", outputs["OrdersTopicArn"],
         "--message", f"file://{event_file}",
         "--message-attributes", '{"type": {"DataType": "String", "StringValue": "order.created"}}'],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["MessageId"]
    # Then the inventory reservation, the confirmation email and the analytics row all appear
    dynamodb = cloud.client("dynamodb")
    inventory = InventoryRepository(outputs["InventoryTableName"], client=dynamodb)

    def effects_done() -> bool:
        email = dynamodb.scan(TableName=outputs["OutboxTableName"])["Items"]
        analytics = dynamodb.get_item(
            TableName=outputs["AnalyticsTableName"], Key={"event_id": {"S": "evt-cli-1"}}
        )
        return (
            inventory.reservation("ord-cli-1") is not None
            and any("ord-cli-1" in json.dumps(item) for item in email)
            and "Item" in analytics
        )

    cloud.wait_until(effects_done, 60, "the AWS CLI's event to reach inventory, email and analytics")


def test_a_poison_event_lands_in_each_consumers_dlq_with_its_reason(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # Given a schema-invalid order event (no lines)
    outputs = cloud.stack_outputs()
    event = _order_event("evt-poison-1", "ord-poison-1")
    event["data"]["lines"] = []
    event_file = tmp_path / "poison.json"
    event_file.write_text(json.dumps(event))
    before = {q: cloud.queues()[q]["visible"] for q in cloud.queues() if cloud.queues()[q]["dlq"]}
    # When it is sent with `localcloud send`
    assert localcloud_cli(["send", "OrdersTopicArn", str(event_file), "--endpoint", cloud.endpoint]) == 0
    # Then it sits in the inventory DLQ (and the other consumers'), labelled SchemaInvalid
    inventory_dlq = outputs["InventoryDeadLetterQueueUrl"].rsplit("/", 1)[-1]
    cloud.wait_until(
        lambda: cloud.queues()[inventory_dlq]["visible"] > before[inventory_dlq], 60, "the inventory DLQ"
    )
    reasons = [
        m["MessageAttributes"]["error-type"]["StringValue"]
        for m in _dead_letters(cloud, f"{cloud.endpoint}/123456789012/{inventory_dlq}")
        if "evt-poison-1" in m["Body"]
    ]
    assert reasons == ["SchemaInvalid"]


def test_redrive_brings_a_message_back_after_a_fix_and_loses_nothing(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    outputs = cloud.stack_outputs()
    dlq_name = outputs["InventoryDeadLetterQueueUrl"].rsplit("/", 1)[-1]
    source_name = outputs["InventoryQueueUrl"].rsplit("/", 1)[-1]
    for name in (dlq_name,):  # start from an empty DLQ so the counts below are this test's
        purge_queue(cloud, f"{cloud.endpoint}/123456789012/{name}")
    inventory = InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb"))
    inventory.put_stock("SKU-RED-MUG", 10)
    inventory.put_stock("SKU-TEA-100G", 10)
    event_file = tmp_path / "order.json"
    event_file.write_text(json.dumps(_order_event("evt-redrive-1", "ord-redrive-1")))
    # Given a bad configuration of the inventory function: every attempt fails, without delay between them
    with inventory_outage(cloud):
        # When an order reaches the inventory queue, fails maxReceiveCount times and is moved to its DLQ
        assert (
            localcloud_cli(["send", "InventoryQueueUrl", str(event_file), "--endpoint", cloud.endpoint]) == 0
        )
        cloud.wait_until(
            lambda: cloud.queues()[dlq_name]["visible"] == 1, 90, "SQS to move the message to the DLQ"
        )
    # And the configuration is fixed
    assert inventory.reservation("ord-redrive-1") is None
    # And `localcloud redrive` moves it back (a dry run first moves nothing)
    assert (
        localcloud_cli(["redrive", "InventoryDeadLetterQueueUrl", "--dry-run", "--endpoint", cloud.endpoint])
        == 0
    )
    assert cloud.queues()[dlq_name]["visible"] == 1
    assert localcloud_cli(["redrive", "InventoryDeadLetterQueueUrl", "--endpoint", cloud.endpoint]) == 0
    # Then the fixed function processes it: the reservation exists and both queues end empty
    cloud.wait_until(lambda: inventory.reservation("ord-redrive-1") is not None, 60, "the redriven order")
    cloud.wait_until(
        lambda: all(cloud.queues()[q]["visible"] + cloud.queues()[q]["in_flight"] == 0 for q in (dlq_name, source_name)),
        60, "the inventory queue and its DLQ to empty",
    )  # fmt: skip


def test_poison_events_cover_every_non_retryable_kind() -> None:
    published = build_events(100, duplicate_share=0.05, poison_share=0.03)
    assert len(published.all) == 100
    assert set(published.poison) == {"MalformedJson", "SchemaInvalid", "UnknownEventType"}
    assert {m.body for m in published.duplicates} <= {m.body for m in published.unique}


@pytest.mark.parametrize(
    ("policy", "attributes", "expected"),
    [
        ({"type": ["order.created"]}, {"type": "order.created"}, True),
        ({"type": ["order.created"]}, {"type": "order.teleported"}, False),
        ({"type": [{"prefix": "order."}]}, {"type": "order.teleported"}, True),
        ({"type": [{"prefix": "order."}]}, {}, False),
        (None, {}, True),
    ],
)
def test_the_reconciliation_routes_like_the_filter_policies(policy, attributes, expected) -> None:
    assert matches(policy, attributes) is expected
