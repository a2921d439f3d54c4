"""Order events as producers publish them, and the poison records a queue can carry."""

from __future__ import annotations

import json
from typing import Any

POISON_BODIES = (
    '{"event_id": "broken", "type": "order.created", ',  # malformed JSON
    json.dumps({"event_id": "schema-invalid", "type": "order.created"}),  # no source, occurred_at, data
    json.dumps(
        {
            "event_id": "unknown-type",
            "type": "order.teleported",
            "source": "bench",
            "occurred_at": "2026-11-29T10:00:00+00:00",
            "data": {},
        }
    ),
)


def order_envelope(event_id: str) -> dict[str, Any]:
    """An ``order.created`` event shaped like ``events/order-created.json``: two lines, two SKUs."""
    return {
        "event_id": event_id,
        "type": "order.created",
        "source": "bench",
        "occurred_at": "2026-11-29T10:00:00+00:00",
        "data": {
            "order_id": f"ord-{event_id}",
            "customer_id": "cus-42",
            "customer_email": "ada@example.com",
            "lines": [
                {"sku": "SKU-RED-MUG", "quantity": 2, "unit_price_cents": 1250},
                {"sku": "SKU-TEA-100G", "quantity": 1, "unit_price_cents": 899},
            ],
            "currency": "EUR",
        },
    }


def order_body(event_id: str) -> str:
    return json.dumps(order_envelope(event_id))
