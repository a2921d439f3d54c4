"""What the conformance tests share: reading the probe's observations, sending and draining queues."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from localcloud.cloud import LocalCloud

_DESERIALIZER = TypeDeserializer()


def new_run(name: str) -> str:
    """A run id: every message and event of one test carries its own, so tests never see each other's."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Probe:
    """The probe's observation table: per run, the SQS records it saw and the invocations it ran."""

    cloud: LocalCloud
    table: str

    def _query(self, pk: str) -> list[dict[str, Any]]:
        pages = (
            self.cloud.client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ConsistentRead=True,
            )
        )
        return [
            {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}
            for page in pages
            for item in page["Items"]
        ]

    def records(self, run: str) -> list[dict[str, Any]]:
        """Every SQS record the probe processed for ``run``, in processing order."""
        return self._query(f"{run}#records")

    def deliveries(self, run: str, message: str) -> list[dict[str, Any]]:
        """The deliveries of one message (by its id in the body), in order."""
        return [r for r in self.records(run) if r["id"] == message]

    def invocations(self, run: str) -> list[dict[str, Any]]:
        """Every invocation that processed records of ``run``: start, end, ids, batch_size; by start."""
        return self._query(f"{run}#invocations")


def body(run: str, message: str, **fields: Any) -> str:
    return json.dumps({"run": run, "id": message, **fields})


def send(cloud: LocalCloud, url: str, bodies: Iterable[str]) -> list[str]:
    """One SendMessageBatch (the messages enter the queue together; at most 10); their message ids."""
    entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    result = cloud.client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
    assert not result.get("Failed"), result["Failed"]
    return [m["MessageId"] for m in sorted(result["Successful"], key=lambda m: int(m["Id"]))]


def take(cloud: LocalCloud, url: str, keep: Callable[[dict[str, Any]], bool], count: int, *,
         timeout: float = 30.0, what: str = "messages") -> list[dict[str, Any]]:  # fmt: skip
    """Receive until ``count`` messages for which ``keep`` holds have arrived; those are deleted."""
    sqs = cloud.client("sqs")
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=1,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        for message in got:
            if keep(message) and message["MessageId"] not in {m["MessageId"] for m in found}:
                found.append(message)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(found) >= count

    cloud.wait_until(arrived, timeout, f"{count} {what} in {url.rsplit('/', 1)[-1]}")
    return found


def of_run(run: str) -> Callable[[dict[str, Any]], bool]:
    """``take`` filter: messages whose body (or the SNS message inside it) mentions ``run``."""
    return lambda message: run in message["Body"]


def queue_depth(cloud: LocalCloud, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def holds_for(condition: Callable[[], bool], seconds: float, what: str, poll: float = 0.2) -> None:
    """Assert that ``condition`` holds at every check during ``seconds`` (a negative observation:
    nothing may happen in that window, so a window is what it takes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(poll)
    assert condition(), f"{what} stopped holding"


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at equal times)."""
    spans = list(intervals)
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak
