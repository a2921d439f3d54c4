"""The steps of the order saga: charge payment, reserve inventory, send the confirmation.

A Step Functions workflow calls one Lambda per concern with ``{"action": ..., "order": {...}}``
and compensates on failure (refund, release inventory, tell the customer). Every step is
idempotent per order id, because the workflow retries transient failures and a retried step
must not charge, reserve or email twice.

The workflow decides retry or compensate from the error's class name (Lambda's ``errorType``):
``BusinessRuleViolationError`` subclasses (``InvalidOrderError``, ``PaymentDeclinedError``, ``OutOfStockError``,
``RecipientRejectedError``) and ``UnknownActionError`` never succeed on retry; ``TransientError`` and
``PaymentProviderUnavailableError`` are worth retrying.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import StringConstraints, ValidationError

from asyncstack.runtime.errors import NonRetryableError
from asyncstack.runtime.events import describe_validation_error
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from asyncstack.runtime.workflows import transient_aws_errors
from shared.config import InventorySettings, OutboxSettings, PaymentsSettings
from shared.events import OrderCreated
from shared.inventory import InventoryRepository
from shared.mailer import EmailMessage, EmailProvider, OutboxEmailProvider
from shared.payments import (
    VISA,
    BusinessRuleViolationError,
    InvalidOrderError,
    PaymentDeclinedError,
    PaymentProvider,
    PaymentProviderUnavailableError,
    SimulatedPaymentProvider,
)

__all__ = [
    "BusinessRuleViolationError",
    "InvalidOrderError",
    "OutOfStockError",
    "PaymentDeclinedError",
    "PaymentProviderUnavailableError",
    "RecipientRejectedError",
    "SagaFailure",
    "SagaOrder",
    "UnknownActionError",
    "confirmation_message",
    "failure_message",
    "failure_reason",
    "is_suppressed",
    "parse_order",
    "run_inventory_step",
    "run_notification_step",
    "run_payment_step",
]


class UnknownActionError(NonRetryableError):
    """The workflow asked a step for an action it does not have: a definition bug, not the order's fault."""

    error_type = "UnknownAction"


class OutOfStockError(BusinessRuleViolationError):
    """Not enough stock for some of the order's skus (named in the message and in ``skus``)."""

    error_type = "OutOfStock"

    def __init__(self, message: str, skus: list[str]) -> None:
        super().__init__(message)
        self.skus = skus


class RecipientRejectedError(BusinessRuleViolationError):
    """The customer's address cannot receive mail, so the order cannot be confirmed."""

    error_type = "RecipientRejected"


class SagaOrder(OrderCreated):
    """The workflow's input: an ``order.created`` order plus how to pay for it."""

    payment_method: Annotated[str, StringConstraints(min_length=1, max_length=64)] = VISA


@dataclass(frozen=True)
class SagaFailure:
    """What a Step Functions ``Catch`` puts in the state (``{"Error": ..., "Cause": ...}``)."""

    error: str = ""
    cause: str = ""

    @classmethod
    def from_state(cls, raw: Any) -> SagaFailure:
        """Lenient on purpose: a failure notice must not fail because the failure looks odd."""
        if not isinstance(raw, Mapping):
            return cls(cause=str(raw or ""))
        return cls(error=str(raw.get("Error") or ""), cause=str(raw.get("Cause") or ""))


def parse_order(raw: Any) -> SagaOrder:
    try:
        return SagaOrder.model_validate(raw)
    except ValidationError as error:
        raise InvalidOrderError(f"order: {describe_validation_error(error)}") from error


def _action(event: Mapping[str, Any], actions: tuple[str, ...]) -> str:
    action = event.get("action") if isinstance(event, Mapping) else None
    if action not in actions:
        raise UnknownActionError(f"action {action!r} is not one of {', '.join(actions)}")
    return str(action)


# -- payments ------------------------------------------------------------------------------------


@transient_aws_errors
def run_payment_step(event: Mapping[str, Any], provider: PaymentProvider | None = None) -> dict[str, Any]:
    """``charge`` the order's total, or ``refund`` it (the compensation)."""
    action = _action(event, ("charge", "refund"))
    order = parse_order(event.get("order"))
    provider = provider or SimulatedPaymentProvider(load(PaymentsSettings).payments_table)
    if action == "charge":
        payment = provider.charge(order.order_id, order.total_cents, order.currency, order.payment_method)
        logger.info("payment captured", extra={"order_id": order.order_id, "payment_id": payment.payment_id})
        return {
            "payment_id": payment.payment_id,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
            "status": payment.status,
        }
    refund = provider.refund(order.order_id)
    logger.info("payment refund", extra={"order_id": order.order_id, "status": refund.status})
    return {"payment_id": refund.payment_id, "status": refund.status}


# -- inventory -----------------------------------------------------------------------------------


@transient_aws_errors
def run_inventory_step(
    event: Mapping[str, Any], repository: InventoryRepository | None = None
) -> dict[str, Any]:
    """``reserve`` every line of the order, or ``release`` the reservation (the compensation)."""
    action = _action(event, ("reserve", "release"))
    order = parse_order(event.get("order"))
    repository = repository or InventoryRepository(load(InventorySettings).inventory_table)
    if action == "release":
        release = repository.release(order)
        logger.info("inventory release", extra={"order_id": order.order_id, "status": release.status})
        if release.status == "released":
            return {"status": "released", "units": release.units}
        return {"status": "nothing_to_release"}
    reservation = repository.reserve(f"saga:{order.order_id}", order)
    logger.info("inventory reservation", extra={"order_id": order.order_id, "status": reservation.status})
    if reservation.status == "reserved":
        return {"status": "reserved", "units": sum(line.quantity for line in order.lines)}
    # refused now or before, or a retry of a reservation that went through: the row says which
    row = repository.reservation(order.order_id) or {}
    status = row.get("status", {}).get("S")
    if status == "reserved":
        return {"status": "reserved", "units": int(row["units"]["N"])}
    if status == "insufficient_stock":
        skus = sorted(row["short_skus"]["SS"])
        raise OutOfStockError(f"not enough stock for {', '.join(skus)} (order {order.order_id})", skus)
    raise InvalidOrderError(
        f"order {order.order_id} was cancelled (reservation {status}): it is not reserved again"
    )


# -- notifications -------------------------------------------------------------------------------


def is_suppressed(address: str) -> bool:
    """The default suppression check: RFC 2606 reserves ``.invalid``, so such an address never gets mail.

    A production policy would also consult bounces and complaints (an SES suppression list).
    """
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return domain == "invalid" or domain.endswith(".invalid")


def _lines(order: SagaOrder) -> str:
    return "\n".join(f"  {line.quantity} x {line.sku}" for line in order.lines)


def confirmation_message(order: SagaOrder) -> EmailMessage:
    amount = f"{order.total_cents / 100:.2f} {order.currency}"
    return EmailMessage(
        message_id=f"saga-confirmation#{order.order_id}",
        to=order.customer_email,
        subject=f"Order {order.order_id} confirmed",
        body=f"Thank you for your order {order.order_id}.\n\n{_lines(order)}\n\nTotal charged: {amount}\n",
    )


def failure_reason(failure: SagaFailure) -> str:
    """The ``errorMessage`` of a Lambda error's JSON ``Cause`` when it has one, else the Cause as is."""
    message = failure.cause.strip()
    try:
        cause = json.loads(message)
    except ValueError:
        cause = None
    if isinstance(cause, dict) and isinstance(cause.get("errorMessage"), str):
        message = cause["errorMessage"]
    message = message[:500] or "no details were given"
    return f"{message} ({failure.error})" if failure.error else message


def failure_message(order: SagaOrder, failure: SagaFailure) -> EmailMessage:
    return EmailMessage(
        message_id=f"saga-failure#{order.order_id}",
        to=order.customer_email,
        subject=f"Order {order.order_id} could not be completed",
        body=(
            f"We are sorry: your order {order.order_id} could not be completed.\n\n{_lines(order)}\n\n"
            f"Reason: {failure_reason(failure)}\n"
        ),
    )


@transient_aws_errors
def run_notification_step(
    event: Mapping[str, Any],
    provider: EmailProvider | None = None,
    suppressed: Callable[[str], bool] = is_suppressed,
) -> dict[str, Any]:
    """``confirm`` the order, or ``notify_failure`` (tell the customer why it failed).

    A confirmation that cannot be delivered is a business failure (``RecipientRejectedError``); a failure
    notice that cannot be delivered is skipped, since the saga has nothing left to compensate.
    """
    action = _action(event, ("confirm", "notify_failure"))
    order = parse_order(event.get("order"))
    if action == "confirm":
        message = confirmation_message(order)
        if suppressed(order.customer_email):
            domain = order.customer_email.rpartition("@")[2]
            raise RecipientRejectedError(f"the customer's address at {domain} cannot receive mail")
    else:
        message = failure_message(order, SagaFailure.from_state(event.get("failure")))
        if suppressed(order.customer_email):
            logger.warning("failure notice skipped: address suppressed", extra={"order_id": order.order_id})
            return {"message_id": message.message_id, "sent": False}
    provider = provider or OutboxEmailProvider(load(OutboxSettings).outbox_table)
    sent = provider.send(message)
    logger.info("saga email", extra={"order_id": order.order_id, "action": action, "sent": sent})
    return {"message_id": message.message_id, "sent": sent}
