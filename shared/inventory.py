"""Inventory: reserve stock for an order with DynamoDB conditional writes.

One transaction decrements every line's stock (only where enough is available) and writes
the reservation (only if none exists for the order). The reservation row makes the effect
idempotent at the data layer too, below Powertools idempotency: a replay cannot reserve twice.
Releasing (the order saga's compensation) is the mirror image: one transaction puts the
reserved quantities back and flips the row to ``released``, only while it is ``reserved``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from asyncstack.runtime import aws
from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.events import EventEnvelope
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from shared.config import InventorySettings
from shared.events import OrderCreated

ReservationStatus = Literal["reserved", "insufficient_stock", "already_reserved"]
ReleaseStatus = Literal["released", "nothing_to_release"]


@dataclass(frozen=True)
class Reservation:
    order_id: str
    status: ReservationStatus
    detail: str = ""


@dataclass(frozen=True)
class Release:
    order_id: str
    status: ReleaseStatus
    units: int = 0


def _stock_key(sku: str) -> dict[str, Any]:
    return {"pk": {"S": f"stock#{sku}"}}


def _reservation_key(order_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"reservation#{order_id}"}}


def _quantities(order: OrderCreated) -> dict[str, int]:
    """Units per sku: an order may list the same sku on several lines."""
    quantities: dict[str, int] = {}
    for line in order.lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    return quantities


class InventoryRepository:
    """Stock levels and reservations in one table keyed by ``pk``."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def put_stock(self, sku: str, available: int) -> None:
        self.client.put_item(
            TableName=self.table, Item={**_stock_key(sku), "available": {"N": str(available)}}
        )

    def available(self, sku: str) -> int:
        item = self.client.get_item(TableName=self.table, Key=_stock_key(sku), ConsistentRead=True).get(
            "Item"
        )
        return int(item["available"]["N"]) if item else 0

    def reservation(self, order_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key=_reservation_key(order_id), ConsistentRead=True)
        return item.get("Item")

    def reservation_count(self) -> int:
        """How many orders have a reservation row (reserved or refused); a full scan, for checks and demos."""
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(pk, :prefix)",
            ExpressionAttributeValues={":prefix": {"S": "reservation#"}},
            Select="COUNT",
        )
        return sum(page["Count"] for page in pages)

    def reserve(self, event_id: str, order: OrderCreated) -> Reservation:
        quantities = _quantities(order)
        updates = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _stock_key(sku),
                    "UpdateExpression": "SET available = available - :q",
                    "ConditionExpression": "available >= :q",
                    "ExpressionAttributeValues": {":q": {"N": str(quantity)}},
                }
            }
            for sku, quantity in sorted(quantities.items())
        ]
        record = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **_reservation_key(order.order_id),
                    "status": {"S": "reserved"},
                    "event_id": {"S": event_id},
                    "units": {"N": str(sum(quantities.values()))},
                    # what was taken per sku, so a release puts back exactly that
                    "quantities": {"M": {sku: {"N": str(q)} for sku, q in quantities.items()}},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[*updates, record])
            return Reservation(order.order_id, "reserved")
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
        return self._after_cancellation(event_id, order, sorted(quantities), reasons)

    def release(self, order: OrderCreated) -> Release:
        """Put a reserved order's stock back, once: anything but a ``reserved`` row is nothing to release."""
        row = self.reservation(order.order_id)
        if not row or row["status"]["S"] != "reserved":
            return Release(order.order_id, "nothing_to_release")
        # Rows written before ``quantities`` was recorded: the order's lines are what they reserved.
        quantities = (
            {sku: int(value["N"]) for sku, value in row["quantities"]["M"].items()}
            if "quantities" in row
            else _quantities(order)
        )
        updates = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _stock_key(sku),
                    "UpdateExpression": "ADD available :q",
                    "ExpressionAttributeValues": {":q": {"N": str(quantity)}},
                }
            }
            for sku, quantity in sorted(quantities.items())
        ]
        record = {
            "Update": {
                "TableName": self.table,
                "Key": _reservation_key(order.order_id),
                "UpdateExpression": "SET #status = :released, released_at = :now",
                "ConditionExpression": "#status = :reserved",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":released": {"S": "released"},
                    ":reserved": {"S": "reserved"},
                    ":now": {"S": datetime.now(UTC).isoformat()},
                },
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[*updates, record])
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                return Release(order.order_id, "nothing_to_release")  # released concurrently
            raise TransientError(f"inventory release cancelled: {reasons}") from error
        return Release(order.order_id, "released", sum(quantities.values()))

    def _after_cancellation(
        self, event_id: str, order: OrderCreated, skus: list[str], reasons: list[str]
    ) -> Reservation:
        if reasons and reasons[-1] == "ConditionalCheckFailed":
            return Reservation(order.order_id, "already_reserved")
        short = [
            sku for sku, reason in zip(skus, reasons, strict=False) if reason == "ConditionalCheckFailed"
        ]
        if not short:  # conflicts and throttling cancel a transaction too: worth a retry
            raise TransientError(f"inventory transaction cancelled: {reasons}")
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **_reservation_key(order.order_id),
                    "status": {"S": "insufficient_stock"},
                    "event_id": {"S": event_id},
                    "short_skus": {"SS": short},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return Reservation(order.order_id, "already_reserved")
        return Reservation(order.order_id, "insufficient_stock", f"not enough stock for {', '.join(short)}")


def reserve_stock(
    envelope: EventEnvelope, order: OrderCreated, repository: InventoryRepository | None = None
) -> dict[str, str]:
    """Reserve every line of ``order``; an out-of-stock order is recorded, not retried."""
    repository = repository or InventoryRepository(load(InventorySettings).inventory_table)
    reservation = repository.reserve(envelope.event_id, order)
    logger.info("inventory reservation", extra={"order_id": order.order_id, "status": reservation.status})
    return {"order_id": reservation.order_id, "status": reservation.status, "detail": reservation.detail}
