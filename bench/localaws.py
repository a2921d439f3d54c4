"""A fresh moto account with the stack's queues and tables, and Lambda SQS events built from it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws

from asyncstack.runtime.aws import reset_clients
from asyncstack.runtime.settings import load as load_settings
from bench.environment import REGION
from localcloud.awslambda.lambda_context import LocalLambdaContext
from localcloud.sqs.records import lambda_event
from shared.inventory import InventoryRepository

# environment variable -> (table name, hash key); the idempotency table as Powertools expects it
TABLES = {
    "INVENTORY_TABLE_NAME": ("bench-inventory", "pk"),
    "OUTBOX_TABLE_NAME": ("bench-outbox", "message_id"),
    "ANALYTICS_TABLE_NAME": ("bench-analytics", "event_id"),
    "IDEMPOTENCY_TABLE_NAME": ("bench-idempotency", "id"),
}
SKUS = ("SKU-RED-MUG", "SKU-TEA-100G")
PLENTY = 10**12


@dataclass
class LocalAws:
    """Clients of the benchmark itself (not the handlers'), and the work queue they read."""

    queue_url: str
    queue_arn: str
    dlq_url: str

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name=REGION)

    @property
    def dynamodb(self) -> Any:
        return boto3.client("dynamodb", region_name=REGION)

    def table(self, variable: str) -> str:
        return TABLES[variable][0]

    @property
    def inventory(self) -> InventoryRepository:
        return InventoryRepository(self.table("INVENTORY_TABLE_NAME"), client=self.dynamodb)

    def seed_stock(self) -> None:
        for sku in SKUS:
            self.inventory.put_stock(sku, PLENTY)

    def events(self, bodies: Sequence[str], batch_size: int) -> list[dict[str, Any]]:
        """Lambda SQS events of ``batch_size`` records made of really received messages with ``bodies``.

        The messages go through the queue 10 at a time and are deleted once received (as the event
        source mapping deletes after a success): moto's ReceiveMessage costs O(queue length) per
        message, so a long queue would make preparing the events slower than running them.
        """
        messages: list[dict[str, Any]] = []
        for start in range(0, len(bodies), 10):
            messages += self._round_trip(bodies[start : start + 10])
        return [
            lambda_event(messages[start : start + batch_size], queue_arn=self.queue_arn, region=REGION)
            for start in range(0, len(messages), batch_size)
        ]

    def _round_trip(self, bodies: Sequence[str]) -> list[dict[str, Any]]:
        sqs = self.sqs
        sqs.send_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)],
        )
        messages: list[dict[str, Any]] = []
        while len(messages) < len(bodies):
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                raise RuntimeError(f"received {len(messages)} of {len(bodies)} messages")
            messages += got
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
            )
        return messages

    def forget_reservations(self, event: Mapping[str, Any]) -> None:
        """Delete the reservation rows of ``event``'s orders, keeping the inventory table small.

        moto's TransactWriteItems deep-copies every table it writes to (to roll back), so its cost
        grows with the table; real DynamoDB's does not. Benchmarks call this between batches.
        """
        order_ids = set()
        for record in event["Records"]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                order_ids.add(json.loads(record["body"])["data"]["order_id"])
        deletes = [{"DeleteRequest": {"Key": {"pk": {"S": f"reservation#{o}"}}}} for o in sorted(order_ids)]
        for start in range(0, len(deletes), 25):
            self.dynamodb.batch_write_item(
                RequestItems={self.table("INVENTORY_TABLE_NAME"): deletes[start : start + 25]}
            )


def _create_table(name: str, key: str) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _create_queue(name: str, attributes: dict[str, str] | None = None) -> tuple[str, str]:
    sqs: Any = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


@contextlib.contextmanager
def local_aws() -> Iterator[LocalAws]:
    """A fresh in-process moto account, with the consumer environment pointing at it."""
    with mock_aws():
        dlq_url, _ = _create_queue("bench-work-dlq")
        url, arn = _create_queue("bench-work", {"VisibilityTimeout": "181"})
        for name, key in TABLES.values():
            _create_table(name, key)
        variables = {"QUEUE_URL": url, "DEAD_LETTER_QUEUE_URL": dlq_url}
        variables |= {variable: name for variable, (name, _) in TABLES.items()}
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        reset_clients()
        load_settings.cache_clear()
        try:
            yield LocalAws(queue_url=url, queue_arn=arn, dlq_url=dlq_url)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reset_clients()
            load_settings.cache_clear()


def lambda_context(name: str = "bench-function") -> LocalLambdaContext:
    """A fresh invocation context, far from its deadline (graceful shutdown must not kick in)."""
    return LocalLambdaContext(function_name=name, timeout_seconds=900.0)
