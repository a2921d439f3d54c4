"""Fire-and-forget analytics: one row per event, written in bulk (BatchWriteItem, 25 a call).

Rows are keyed by ``event_id``: a duplicate delivery overwrites the same row with the same
content, so the sink is idempotent without an idempotency record per event (which would turn
one write per 25 events into two writes per event).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from asyncstack.runtime import aws
from asyncstack.runtime.consumer import Decoded
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from shared.config import AnalyticsSettings
from shared.events import OrderCreated

BATCH_WRITE_LIMIT = 25


def row_for(decoded: Decoded) -> dict[str, Any]:
    envelope, data = decoded
    item: dict[str, Any] = {
        "event_id": {"S": envelope.event_id},
        "type": {"S": envelope.type},
        "occurred_at": {"S": envelope.occurred_at.isoformat()},
        "ingested_at": {"S": datetime.now(UTC).isoformat()},
    }
    if isinstance(data, OrderCreated):
        item |= {
            "order_id": {"S": data.order_id},
            "customer_id": {"S": data.customer_id},
            "total_cents": {"N": str(data.total_cents)},
            "units": {"N": str(sum(line.quantity for line in data.lines))},
        }
    return item


# BatchWriteItem calls per chunk before its unprocessed rows are handed back to SQS as failures.
UNPROCESSED_ATTEMPTS = 4


class AnalyticsSink:
    """A ``BulkSink``: puts rows 25 at a time, retrying unprocessed items with backoff."""

    def __init__(
        self,
        table: str | None = None,
        client: Any = None,
        *,
        max_attempts: int = UNPROCESSED_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._client = client
        self.max_attempts = max_attempts
        self.sleep = sleep

    @property
    def table(self) -> str:
        return self._table or load(AnalyticsSettings).analytics_table

    def write(self, events: Sequence[Decoded]) -> Mapping[str, str]:
        rows = {envelope.event_id: row_for((envelope, data)) for envelope, data in events}
        failures: dict[str, str] = {}
        keys = list(rows)
        for start in range(0, len(keys), BATCH_WRITE_LIMIT):
            chunk = {key: rows[key] for key in keys[start : start + BATCH_WRITE_LIMIT]}
            failures |= self._write_chunk(chunk)
        return failures

    def _write_chunk(self, chunk: Mapping[str, dict[str, Any]]) -> dict[str, str]:
        client = self._client or aws.client("dynamodb")
        pending = [{"PutRequest": {"Item": row}} for row in chunk.values()]
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
            try:
                response = client.batch_write_item(RequestItems={self.table: pending})
            except Exception as error:  # the whole call failed: every row is retried by SQS
                logger.warning("analytics batch write failed", extra={"error": repr(error)})
                return {row["PutRequest"]["Item"]["event_id"]["S"]: repr(error) for row in pending}
            pending = response.get("UnprocessedItems", {}).get(self.table, [])
            if not pending:
                return {}
        return {row["PutRequest"]["Item"]["event_id"]["S"]: "unprocessed after retries" for row in pending}
