"""Move messages from a dead-letter queue back to its source queue.

moto has no ``StartMessageMoveTask``, so this does the same with ReceiveMessage, SendMessageBatch and
DeleteMessageBatch. A message is deleted from the DLQ only after the source queue accepted it, so a
failure part-way leaves messages in the DLQ (possibly also in the source), never in neither.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.server import LocalCloudError

# Attributes our consumers attach when they dead-letter a message: a redriven message is not failed.
DEAD_LETTER_ATTRIBUTES = frozenset(
    {"error-type", "error-message", "failed-at", "source-queue-arn", "original-message-id"}
)
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
MOVE_VISIBILITY_SECONDS = 60  # covers one receive-send-delete round
DRY_RUN_VISIBILITY_SECONDS = 30  # covers the whole listing, then everything is made visible again
EMPTY_RECEIVES = 3  # a receive may return fewer messages than are available
PREVIEW_CHARS = 80


class RedriveError(LocalCloudError):
    """The redrive cannot start as asked."""


@dataclass(frozen=True)
class PendingMessage:
    """A dead letter a dry run would move, with why it was dead-lettered."""

    message_id: str
    body: str
    error_type: str | None = None
    error_message: str | None = None


@dataclass
class RedriveReport:
    """What a redrive did (or, for a dry run, would do), for the caller to print."""

    dlq_url: str
    source_url: str
    moved: int = 0
    failed: int = 0  # left in the DLQ: the source refused them, or an earlier message of their FIFO group
    dry_run: bool = False
    messages: list[PendingMessage] = field(default_factory=list)  # dry run only
    not_deleted: int = 0  # in the source but still in the DLQ: a later redrive would send them again
    remaining: int = 0  # approximately, in the DLQ afterwards (a FIFO group waits behind a failed message)

    def summary(self) -> str:
        if self.dry_run:
            head = (
                f"dry run: {len(self.messages)} of ~{self.remaining} message(s) in {self.dlq_url} "
                f"would move to {self.source_url}"
            )
            return "\n".join(
                [head]
                + [
                    f"  {m.message_id}  {m.error_type or '-'}: {m.error_message or '-'}  {m.body}"
                    for m in self.messages
                ]
            )
        line = f"moved {self.moved} message(s) from {self.dlq_url} to {self.source_url}"
        if self.failed:
            line += f"; {self.failed} failed and stay in the dead-letter queue"
        if self.not_deleted:
            line += f"; {self.not_deleted} sent but not deleted from the dead-letter queue"
        if self.remaining:
            line += f"; ~{self.remaining} left in the dead-letter queue"
        return line


def find_source_queue(sqs: Any, dlq_url: str) -> str:
    """The one queue whose RedrivePolicy dead-letters into ``dlq_url``."""
    dlq_arn = _attributes(sqs, dlq_url)["QueueArn"]
    sources = []
    for page in sqs.get_paginator("list_queues").paginate():
        for url in page.get("QueueUrls", []):
            with suppress(sqs.exceptions.QueueDoesNotExist):
                policy = _attributes(sqs, url).get("RedrivePolicy")
                if policy and json.loads(policy).get("deadLetterTargetArn") == dlq_arn:
                    sources.append(url)
    if len(sources) != 1:
        found = "no queue uses" if not sources else f"{len(sources)} queues ({', '.join(sources)}) use"
        raise RedriveError(f"{found} {dlq_url} as dead-letter queue; pass the source queue URL explicitly")
    return sources[0]


def deduplication_id(dlq_message_id: str) -> str:
    """New per redrive of a dead letter (the original id may still be deduplicating), same on a retry."""
    return f"redrive-{dlq_message_id}"


def redrive(
    sqs: Any, dlq_url: str, *, source_url: str | None = None, dry_run: bool = False, limit: int | None = None,
    message_ids: Collection[str] | None = None,
) -> RedriveReport:  # fmt: skip
    """Move up to ``limit`` dead letters back to the source queue (or list them, for a dry run); with
    ``message_ids``, only those messages (the others are looked at and left in place)."""
    source_url = source_url or find_source_queue(sqs, dlq_url)
    fifo = _attributes(sqs, dlq_url).get("FifoQueue") == "true"
    if fifo != (_attributes(sqs, source_url).get("FifoQueue") == "true"):
        raise RedriveError(f"{dlq_url} and {source_url} must both be FIFO queues or both standard queues")
    report = RedriveReport(dlq_url, source_url, dry_run=dry_run)
    if message_ids is not None:
        limit = min(limit or len(message_ids), len(message_ids))
    _Run(sqs, report, fifo, limit, message_ids).run()
    after = _attributes(sqs, dlq_url)
    report.remaining = int(after["ApproximateNumberOfMessages"]) + int(
        after["ApproximateNumberOfMessagesNotVisible"]
    )
    return report


class _Run:
    def __init__(
        self, sqs: Any, report: RedriveReport, fifo: bool, limit: int | None, only: Collection[str] | None
    ) -> None:
        self.sqs, self.report, self.fifo, self.limit = sqs, report, fifo, limit
        self.only = None if only is None else frozenset(only)
        self.handled: set[str] = set()  # message ids dealt with in this run, not to be sent again
        self.held: dict[str, str] = {}  # message id -> receipt handle, made visible again at the end
        self.blocked: set[str] = set()  # FIFO groups whose head stays behind: the rest of the group waits

    @property
    def done(self) -> int:
        return len(self.report.messages) if self.report.dry_run else self.report.moved

    def run(self) -> None:
        try:
            for received in self._receive():
                self.handled.update(m["MessageId"] for m in received)
                self.held.update({m["MessageId"]: m["ReceiptHandle"] for m in received})
                wanted = [m for m in received if self.only is None or m["MessageId"] in self.only]
                if self.report.dry_run:
                    self.report.messages += [_preview(m) for m in wanted]
                else:
                    self._move(wanted)
        finally:
            self._release()

    def _receive(self) -> Iterator[list[dict[str, Any]]]:
        """New messages, in order, until the DLQ looks drained or ``limit`` is reached."""
        empty = 0
        while self.limit is None or self.done < self.limit:
            wanted = (
                MAX_BATCH_ENTRIES if self.limit is None else min(MAX_BATCH_ENTRIES, self.limit - self.done)
            )
            received = self.sqs.receive_message(
                QueueUrl=self.report.dlq_url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=DRY_RUN_VISIBILITY_SECONDS
                if self.report.dry_run
                else MOVE_VISIBILITY_SECONDS,
                WaitTimeSeconds=1 if empty else 0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            for message in received:  # seen again after its visibility ran out: keep the newest handle
                if message["MessageId"] in self.held:
                    self.held[message["MessageId"]] = message["ReceiptHandle"]
            new = [m for m in received if m["MessageId"] not in self.handled]
            if new:
                empty = 0
                yield new
                continue
            empty += 1
            visible = int(_attributes(self.sqs, self.report.dlq_url)["ApproximateNumberOfMessages"])
            if empty >= EMPTY_RECEIVES or visible == 0:
                return

    def _move(self, messages: list[dict[str, Any]]) -> None:
        """Send in order, then delete what the source accepted; the rest stays held until the end."""
        by_id = {str(i): m for i, m in enumerate(messages)}
        sent: list[dict[str, Any]] = []
        try:
            for chunk in _chunks([_entry(i, m, self.fifo) for i, m in by_id.items()], fifo=self.fifo):
                entries = [e for e in chunk if e.get("MessageGroupId") not in self.blocked]
                self.report.failed += len(chunk) - len(entries)
                if not entries:
                    continue
                response = self.sqs.send_message_batch(QueueUrl=self.report.source_url, Entries=entries)
                accepted = {item["Id"] for item in response.get("Successful", [])}
                for entry in entries:
                    if entry["Id"] in accepted:
                        sent.append(by_id[entry["Id"]])
                    else:
                        self.report.failed += 1
                        if "MessageGroupId" in entry:
                            self.blocked.add(entry["MessageGroupId"])
        finally:
            if sent:
                self._delete(sent)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        self.report.moved += len(messages)
        for message in messages:
            self.held.pop(message["MessageId"], None)
        response = self.sqs.delete_message_batch(
            QueueUrl=self.report.dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        self.report.not_deleted += len(response.get("Failed", []))

    def _release(self) -> None:
        """Make held messages visible again; one that is not stays hidden only until its timeout."""
        handles = list(self.held.values())
        for start in range(0, len(handles), MAX_BATCH_ENTRIES):
            with suppress(BotoCoreError, ClientError):
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.report.dlq_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                        for i, handle in enumerate(handles[start : start + MAX_BATCH_ENTRIES])
                    ],
                )
        self.held.clear()


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def _preview(message: Mapping[str, Any]) -> PendingMessage:
    attributes = message.get("MessageAttributes", {})
    return PendingMessage(
        message_id=message["MessageId"],
        body=message["Body"][:PREVIEW_CHARS],
        error_type=attributes.get("error-type", {}).get("StringValue"),
        error_message=attributes.get("error-message", {}).get("StringValue"),
    )


def _entry(entry_id: str, message: Mapping[str, Any], fifo: bool) -> dict[str, Any]:
    """The SendMessageBatch entry that re-sends a dead letter as it was before it failed."""
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    attributes = {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in message.get("MessageAttributes", {}).items()
        if name not in DEAD_LETTER_ATTRIBUTES
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    system = message.get("Attributes", {})
    if system.get("AWSTraceHeader"):
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system["MessageGroupId"]
        entry["MessageDeduplicationId"] = deduplication_id(message["MessageId"])
    return entry


def _size(entry: Mapping[str, Any]) -> int:
    """What SQS counts against the batch payload limit: body plus message attributes."""
    size = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        data = value.get("StringValue", "").encode() or value.get("BinaryValue", b"")
        size += len(name.encode()) + len(value["DataType"].encode()) + len(data)
    return size


def _chunks(entries: Iterable[dict[str, Any]], *, fifo: bool) -> Iterator[list[dict[str, Any]]]:
    """Consecutive batches of at most 10 entries and 256 KiB, in order.

    A FIFO batch holds one message per group: entries of a batch succeed or fail one by one, and a
    refused message must not be overtaken by a later one of its group.
    """
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = _size(entry)
        full = len(chunk) == MAX_BATCH_ENTRIES or size + entry_size > MAX_BATCH_BYTES
        if chunk and (full or (fifo and entry["MessageGroupId"] in {e["MessageGroupId"] for e in chunk})):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk
