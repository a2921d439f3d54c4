"""Payments for the order saga, behind a ``PaymentProvider``.

The default provider simulates one: the order's payment method says how it behaves, like a real
provider's test cards, and every charge and refund lands in a DynamoDB ledger (one item per order,
``pk = "payment#<order_id>"``) so tests and demos can see what happened. Conditional writes make
charge and refund idempotent per order at the data layer: a step the workflow retries never
charges or refunds twice.

The error classes live here, below ``shared.order_saga``, because the provider raises them. The
workflow matches on their class names (Lambda's ``errorType``), so the names are a contract.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError

from asyncstack.runtime import aws
from asyncstack.runtime.errors import NonRetryableError, TransientError


class BusinessRuleViolationError(NonRetryableError):
    """The order cannot go through as it stands: a retry gets the same answer, so the saga compensates."""

    error_type = "BusinessRuleViolation"


class InvalidOrderError(BusinessRuleViolationError):
    """The step's order fails validation, or names a payment method the provider does not accept."""

    error_type = "InvalidOrder"


class PaymentDeclinedError(BusinessRuleViolationError):
    """The provider refused the charge: another attempt with the same card is refused too."""

    error_type = "PaymentDeclined"


class PaymentProviderUnavailableError(TransientError):
    """The provider could not take the charge right now: worth a retry with backoff."""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    amount_cents: int
    currency: str
    status: Literal["captured"] = "captured"


@dataclass(frozen=True)
class Refund:
    payment_id: str | None
    status: Literal["refunded", "nothing_to_refund"]


class PaymentProvider(Protocol):
    def charge(self, order_id: str, amount_cents: int, currency: str, payment_method: str) -> Payment:
        """Capture the order's payment, once per ``order_id``: a repeated call returns the same payment."""
        ...

    def refund(self, order_id: str) -> Refund:
        """Refund the order's captured payment, if any; a repeated call is a no-op."""
        ...


# The simulated provider's test payment methods; anything else is an invalid order.
VISA = "pm_card_visa"
DECLINED = "pm_card_declined"
FLAKY = "pm_card_flaky"
UNAVAILABLE = "pm_card_unavailable"
PAYMENT_METHODS = (VISA, DECLINED, FLAKY, UNAVAILABLE)
FLAKY_FAILURES = 2  # pm_card_flaky: this many attempts fail per order, the next one succeeds
OPEN = ("pending", "declined")  # ledger statuses a charge may still capture from


def _key(order_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"payment#{order_id}"}}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _status(item: dict[str, Any]) -> str | None:
    return item["status"]["S"] if "status" in item else None


class SimulatedPaymentProvider:
    """A ``PaymentProvider`` that charges nobody: it records payments in a ledger table keyed by ``pk``.

    Item status: ``pending`` from the first attempt (attempts are counted), ``declined`` after a
    declined attempt, then ``captured`` and ``refunded``; or ``voided``: refunded before anything was
    captured, after which a charge is refused, so a charge still in flight when the saga gave up
    cannot take money for a failed order.
    """

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def payment(self, order_id: str) -> dict[str, Any] | None:
        """The order's ledger item as stored, or None if it was never charged nor refunded."""
        return self.client.get_item(TableName=self.table, Key=_key(order_id), ConsistentRead=True).get("Item")

    def charge(self, order_id: str, amount_cents: int, currency: str, payment_method: str) -> Payment:
        if payment_method not in PAYMENT_METHODS:
            raise InvalidOrderError(
                f"payment method {payment_method!r} is not accepted: use one of {', '.join(PAYMENT_METHODS)}"
            )
        item = self._count_attempt(order_id, payment_method)
        if _status(item) == "captured":
            return self._payment(item)  # a retried charge: the same payment, charged once
        self._refuse_if_closed(order_id, item)
        attempts = int(item["attempts"]["N"])
        if payment_method == DECLINED:
            self._set_status(order_id, "declined", only_from=OPEN)
            raise PaymentDeclinedError(f"card declined ({DECLINED}) for order {order_id}")
        if payment_method == UNAVAILABLE or (payment_method == FLAKY and attempts <= FLAKY_FAILURES):
            raise PaymentProviderUnavailableError(
                f"payment provider unavailable ({payment_method}, attempt {attempts}) for order {order_id}"
            )
        return self._capture(order_id, amount_cents, currency)

    def refund(self, order_id: str) -> Refund:
        # Two tries: a charge can capture between the refund's two conditional writes; then refund that.
        for _ in range(2):
            if refunded := self._set_status(order_id, "refunded", only_from=("captured",)):
                return Refund(refunded["payment_id"]["S"], "refunded")
            item = self.payment(order_id) or {}
            if _status(item) == "refunded":
                return Refund(item["payment_id"]["S"], "refunded")  # refunded before: a no-op
            if _status(item) == "voided" or self._set_status(order_id, "voided", only_from=(None, *OPEN)):
                return Refund(None, "nothing_to_refund")
        raise PaymentProviderUnavailableError(f"refund for order {order_id} raced with its charge: retry")

    def _count_attempt(self, order_id: str, payment_method: str) -> dict[str, Any]:
        """Each attempt is its own Lambda invocation, so the count lives in the table (atomic ADD)."""
        return self.client.update_item(
            TableName=self.table,
            Key=_key(order_id),
            UpdateExpression="ADD attempts :one SET #status = if_not_exists(#status, :pending), "
            "order_id = :order, payment_method = :method, last_attempt_at = :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":pending": {"S": "pending"},
                ":order": {"S": order_id},
                ":method": {"S": payment_method},
                ":now": {"S": _now()},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]

    def _capture(self, order_id: str, amount_cents: int, currency: str) -> Payment:
        try:
            item = self.client.update_item(
                TableName=self.table,
                Key=_key(order_id),
                UpdateExpression="SET #status = :captured, payment_id = :id, amount_cents = :amount, "
                "currency = :currency, captured_at = :now",
                ConditionExpression="#status IN (:pending, :declined)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":declined": {"S": "declined"},
                    ":captured": {"S": "captured"},
                    ":id": {"S": f"pay_{uuid.uuid4().hex[:24]}"},
                    ":amount": {"N": str(amount_cents)},
                    ":currency": {"S": currency},
                    ":now": {"S": _now()},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.payment(order_id) or {}  # a concurrent call decided first: go with its outcome
            self._refuse_if_closed(order_id, item)
        return self._payment(item)

    def _set_status(
        self, order_id: str, status: str, *, only_from: tuple[str | None, ...]
    ) -> dict[str, Any] | None:
        """Move the ledger item to ``status`` if its status is one of ``only_from`` (None: no item yet).

        Returns the updated item, or None if the item was in another status.
        """
        names = {f":from{i}": value for i, value in enumerate(only_from) if value is not None}
        conditions = ["attribute_not_exists(#status)"] if None in only_from else []
        if names:
            conditions.append(f"#status IN ({', '.join(names)})")
        values = {name: {"S": value} for name, value in names.items()}
        try:
            return self.client.update_item(
                TableName=self.table,
                Key=_key(order_id),
                UpdateExpression=f"SET #status = :status, order_id = :order, {status}_at = :now",
                ConditionExpression=" OR ".join(conditions),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":order": {"S": order_id},
                    ":now": {"S": _now()},
                    **values,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return None

    @staticmethod
    def _refuse_if_closed(order_id: str, item: dict[str, Any]) -> None:
        status = _status(item)
        if status in ("refunded", "voided"):
            raise InvalidOrderError(
                f"order {order_id} was cancelled (payment {status}): it is not charged again"
            )

    @staticmethod
    def _payment(item: dict[str, Any]) -> Payment:
        return Payment(item["payment_id"]["S"], int(item["amount_cents"]["N"]), item["currency"]["S"])
