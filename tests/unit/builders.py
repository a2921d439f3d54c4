"""Builders for order events used across unit tests."""

from __future__ import annotations

import json
from typing import Any


def order_envelope(
    event_id: str, order_id: str | None = None, *, quantity: int = 1, sku: str = "SKU-A"
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "order.created",
        "source": "tests",
        "occurred_at": "2026-11-29T10:00:00+00:00",
        "data": {
            "order_id": order_id or f"ord-{event_id}",
            "customer_id": "cus-1",
            "customer_email": "ada@example.com",
            "lines": [{"sku": sku, "quantity": quantity, "unit_price_cents": 500}],
        },
    }


def order_json(event_id: str, order_id: str | None = None, **kwargs: Any) -> str:
    return json.dumps(order_envelope(event_id, order_id, **kwargs))
