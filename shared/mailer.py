"""Order confirmation emails, sent through an ``EmailProvider``.

The default provider records each message in an outbox table instead of talking to a mail
server; swap in an SES-backed provider for production. The outbox row's key derives from the
event, so even a provider-level replay cannot send the same confirmation twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from asyncstack.runtime import aws
from asyncstack.runtime.events import EventEnvelope
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from shared.config import OutboxSettings
from shared.events import OrderCreated


@dataclass(frozen=True)
class EmailMessage:
    message_id: str
    to: str
    subject: str
    body: str


class EmailProvider(Protocol):
    def send(self, message: EmailMessage) -> bool:
        """Send ``message``; return False if a message with this id was already sent."""
        ...


class OutboxEmailProvider:
    """Writes each message to the outbox table (conditional on its id being new)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    def send(self, message: EmailMessage) -> bool:
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "message_id": {"S": message.message_id},
                    "to": {"S": message.to},
                    "subject": {"S": message.subject},
                    "body": {"S": message.body},
                    "sent_at": {"S": datetime.now(UTC).isoformat()},
                },
                ConditionExpression="attribute_not_exists(message_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def confirmation_for(envelope: EventEnvelope, order: OrderCreated) -> EmailMessage:
    amount = f"{order.total_cents / 100:.2f} {order.currency}"
    lines = "\n".join(f"  {line.quantity} x {line.sku}" for line in order.lines)
    return EmailMessage(
        message_id=f"order-confirmation#{order.order_id}",
        to=order.customer_email,
        subject=f"Order {order.order_id} confirmed",
        body=f"Thank you for your order {order.order_id}.\n\n{lines}\n\nTotal: {amount}\n",
    )


def send_confirmation(
    envelope: EventEnvelope, order: OrderCreated, provider: EmailProvider | None = None
) -> dict[str, Any]:
    provider = provider or OutboxEmailProvider(load(OutboxSettings).outbox_table)
    message = confirmation_for(envelope, order)
    sent = provider.send(message)
    logger.info("order confirmation", extra={"order_id": order.order_id, "sent": sent})
    return {"message_id": message.message_id, "sent": sent}
