"""The example's domain events: orders and signups, carried in the framework's envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from asyncstack.runtime.events import StrictModel

# Every order event's type starts with it (analytics takes them all).
ORDER_EVENT_PREFIX = "order."
ORDER_CREATED = f"{ORDER_EVENT_PREFIX}created"
USER_SIGNED_UP = "user.signed_up"
USER_CONVERTED = "user.converted"
USER_EVENTS = (USER_SIGNED_UP, USER_CONVERTED)

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
# Not `\s`: it names other characters in ECMA 262 (the OpenAPI document's regular expressions), in
# Python's `re` and in pydantic's Rust engine; this class is what the Rust `\s` is (Unicode White_Space).
_NOT_AT_OR_SPACE = r"[^@\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
EMAIL_PATTERN = rf"^{_NOT_AT_OR_SPACE}+@{_NOT_AT_OR_SPACE}+\.{_NOT_AT_OR_SPACE}+$"
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]


def _not_bool_or_text(value: object) -> object:
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"must be an integer, not {type(value).__name__}")
    return value


# An integer as JSON Schema says it (the OpenAPI document's `integer`): lax pydantic also took true as 1
# and "5" as 5. Integral floats and DynamoDB's Decimals stay integers.
JsonInt = Annotated[int, BeforeValidator(_not_bool_or_text)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


MAX_UNIT_PRICE_CENTS = 1_000_000_000


class OrderLine(StrictModel):
    sku: Sku
    quantity: JsonInt = Field(gt=0, le=1000)
    # Bounded so that an order's total (50 lines of 1,000 units) stays exact everywhere it goes: in a
    # DynamoDB number (38 digits) and in a JSON number a JavaScript client reads (2**53).
    unit_price_cents: JsonInt = Field(ge=0, le=MAX_UNIT_PRICE_CENTS)


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
