"""The example's domain events: orders and signups, carried in the framework's envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from asyncstack.runtime.events import StrictModel

# Every order event's type starts with it (analytics takes them all).
ORDER_EVENT_PREFIX = "order."
ORDER_CREATED = f"{ORDER_EVENT_PREFIX}created"
USER_SIGNED_UP = "user.signed_up"
USER_CONVERTED = "user.converted"
USER_EVENTS = (USER_SIGNED_UP, USER_CONVERTED)

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class OrderLine(StrictModel):
    sku: Sku
    quantity: int = Field(gt=0, le=1000)
    unit_price_cents: int = Field(ge=0)


class OrderCreated(StrictModel):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_email: Email
    lines: list[OrderLine] = Field(min_length=1, max_length=50)
    currency: Literal["EUR", "USD", "GBP"] = "EUR"

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.lines)


class UserSignedUp(StrictModel):
    user_id: UserId
    email: Email
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class UserConverted(StrictModel):
    user_id: UserId
    plan: Annotated[str, StringConstraints(min_length=1, max_length=64)]


EVENT_MODELS: Mapping[str, type[BaseModel]] = {
    ORDER_CREATED: OrderCreated,
    USER_SIGNED_UP: UserSignedUp,
    USER_CONVERTED: UserConverted,
}
