"""Producer-side batch publisher for SNS topics and SQS queues ("accumulate and flush").

Why: one ``PublishBatch`` / ``SendMessageBatch`` call carries up to 10 messages, which cuts request
count and cost by up to 10x compared with one call per message. The catch is that batch APIs fail
per entry, so this module owns the bookkeeping callers usually get wrong: splitting by entry count
and byte size, retrying only the entries that failed transiently, and reporting exactly one result
per message instead of raising.

Retries come in one layer each. A whole call that fails (throttled, 5xx, timed out, unreachable) is
retried by the SDK client (``asyncstack.runtime.aws``: standard mode, ``SDK_MAX_ATTEMPTS`` retries
with backoff); when it still fails, its entries are reported failed, never resent here, which would
multiply the SDK's attempts. Entries the service reports failed inside a successful response (which
the SDK does not retry) are resent alone, up to ``max_attempts`` calls in all. A custom ``send_batch``
that wants whole calls retried does so itself.

Delivery is at-least-once: a retried entry (or a call the SDK retried after a timeout) may be
delivered twice, and retrying only some entries of a batch can reorder messages within a FIFO
message group. Consumers must be idempotent, which this stack's workers are.

In Lambda, call ``flush()`` or ``close()`` (or use the publisher as a context manager) before the
handler returns: the interval timer thread is frozen between invocations.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from botocore.exceptions import ClientError

from asyncstack.runtime import aws

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "AWS_MAX_BATCH_ENTRIES",
    "BatchEntry",
    "BatchOutcome",
    "BatchPublisher",
    "EntryFailure",
    "EntryResult",
    "OutgoingMessage",
    "PublishError",
    "SendBatch",
    "message_size",
]

logger = logging.getLogger(__name__)

AWS_MAX_BATCH_ENTRIES = 10
"""Hard limit of both PublishBatch and SendMessageBatch."""

DEFAULT_MAX_BATCH_BYTES = 262_144
"""256 KiB: the aggregate payload limit of one SNS PublishBatch / classic SQS batch."""

MAX_MESSAGE_ATTRIBUTES = 10
MAX_SQS_DELAY_SECONDS = 900
_STRING_DATA_TYPE = "String"
_MAX_ATTRIBUTE_NAME_LENGTH = 256
_MAX_FIFO_ID_LENGTH = 128

_ATTRIBUTE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_RESERVED_ATTRIBUTE_PREFIXES = ("aws.", "amazon.")
# SQS rejects the whole request if any body or attribute contains a character outside this set.
_SQS_INVALID_CHARS_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class PublishError(ValueError):
    """Bad input to the publisher (oversize message, bad delay, bad option, closed publisher).

    A ``ValueError`` subclass so callers treating it as "invalid argument" keep working. Delivery
    failures are never raised: they are reported in ``EntryResult``.
    """


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish; only String message attributes are supported."""

    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    group_id: str | None = None
    deduplication_id: str | None = None
    delay_seconds: int | None = None


@dataclass(frozen=True)
class EntryResult:
    """Final outcome of one ``add()``: the caller inspects these instead of catching exceptions."""

    entry_id: str
    ok: bool
    message_id: str | None
    error_code: str | None
    error_message: str | None
    attempts: int


@dataclass(frozen=True)
class BatchEntry:
    """What a ``send_batch`` callable receives: the entry id to echo back and the message."""

    entry_id: str
    message: OutgoingMessage


@dataclass(frozen=True)
class EntryFailure:
    """A per-entry failure in service-neutral form (mirrors AWS ``BatchResultErrorEntry``)."""

    entry_id: str
    code: str
    message: str
    sender_fault: bool


class BatchOutcome(NamedTuple):
    """``(successful, failed)`` from one batch call; ``successful`` maps entry id -> message id."""

    successful: Mapping[str, str | None]
    failed: Sequence[EntryFailure]


SendBatch = Callable[[Sequence[BatchEntry]], tuple[Mapping[str, str | None], Sequence[EntryFailure]]]
"""Sends one batch; may raise for a whole-call failure, which fails every entry of the call (not retried)."""

MessageValidator = Callable[[OutgoingMessage], None]


def message_size(message: OutgoingMessage) -> int:
    """Bytes a message counts towards the batch limit, as AWS counts them.

    Body plus, per attribute, name + data type ("String") + value, all UTF-8. Counting the data
    type is conservative and matches the SNS/SQS documentation; under-counting would get a whole
    batch rejected with ``BatchRequestTooLong``.
    """
    try:
        size = len(message.body.encode("utf-8"))
        for name, value in message.attributes.items():
            size += len(name.encode("utf-8")) + len(_STRING_DATA_TYPE) + len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise PublishError(f"message is not valid UTF-8 text: {exc}") from exc
    return size


def _validate_common(message: OutgoingMessage) -> None:
    """Reject input AWS would refuse for the *whole* batch, so one bad message cannot sink nine good ones."""
    if not isinstance(message.body, str) or not message.body:
        raise PublishError("message body must be a non-empty string")
    if len(message.attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise PublishError(
            f"a message may carry at most {MAX_MESSAGE_ATTRIBUTES} attributes, got {len(message.attributes)}"
        )
    for name, value in message.attributes.items():
        if (
            not isinstance(name, str)
            or len(name) > _MAX_ATTRIBUTE_NAME_LENGTH
            or not _ATTRIBUTE_NAME_RE.fullmatch(name)
            or name.startswith(".")
            or name.endswith(".")
            or ".." in name
            or name.lower().startswith(_RESERVED_ATTRIBUTE_PREFIXES)
        ):
            raise PublishError(f"invalid message attribute name: {name!r}")
        if not isinstance(value, str) or not value:
            raise PublishError(f"message attribute {name!r} must have a non-empty string value")
    for label, fifo_id in (("group_id", message.group_id), ("deduplication_id", message.deduplication_id)):
        if fifo_id is not None and (
            not isinstance(fifo_id, str) or not 1 <= len(fifo_id) <= _MAX_FIFO_ID_LENGTH
        ):
            raise PublishError(f"{label} must be a string of 1..{_MAX_FIFO_ID_LENGTH} characters")
    delay = message.delay_seconds
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_SQS_DELAY_SECONDS
    ):
        raise PublishError(f"delay_seconds must be an integer in 0..{MAX_SQS_DELAY_SECONDS}, got {delay!r}")


def _is_fifo(target: str) -> bool:
    return target.endswith(".fifo")


def _topic_validator(topic_arn: str) -> MessageValidator:
    def validate(message: OutgoingMessage) -> None:
        if message.delay_seconds is not None:
            raise PublishError("delay_seconds is not supported by SNS topics (SQS only)")
        if _is_fifo(topic_arn) and message.group_id is None:
            raise PublishError(f"FIFO topic {topic_arn} requires group_id on every message")

    return validate


def _queue_validator(queue_url: str) -> MessageValidator:
    def validate(message: OutgoingMessage) -> None:
        texts = [message.body, *message.attributes.values()]
        if any(_SQS_INVALID_CHARS_RE.search(text) for text in texts):
            raise PublishError("message contains characters SQS does not accept")
        if _is_fifo(queue_url):
            if message.group_id is None:
                raise PublishError(f"FIFO queue {queue_url} requires group_id on every message")
            if message.delay_seconds is not None:
                raise PublishError("FIFO queues do not support per-message delay_seconds")

    return validate


def _string_attributes(attributes: Mapping[str, str]) -> dict[str, Any]:
    return {name: {"DataType": _STRING_DATA_TYPE, "StringValue": value} for name, value in attributes.items()}


def _failures_from(response_failed: Sequence[Mapping[str, Any]]) -> list[EntryFailure]:
    return [
        EntryFailure(
            entry_id=str(item["Id"]),
            code=str(item.get("Code", "Unknown")),
            message=str(item.get("Message", "")),
            sender_fault=bool(item.get("SenderFault", False)),
        )
        for item in response_failed
    ]


def _request_entry(entry: BatchEntry, body_key: str) -> dict[str, Any]:
    """One PublishBatch / SendMessageBatch entry; both APIs share every field but the body's name."""
    msg = entry.message
    item: dict[str, Any] = {"Id": entry.entry_id, body_key: msg.body}
    if msg.attributes:
        item["MessageAttributes"] = _string_attributes(msg.attributes)
    if msg.delay_seconds is not None:  # SQS only: the topic validator refuses it for SNS
        item["DelaySeconds"] = msg.delay_seconds
    if msg.group_id is not None:
        item["MessageGroupId"] = msg.group_id
    if msg.deduplication_id is not None:
        item["MessageDeduplicationId"] = msg.deduplication_id
    return item


def _outcome(response: Mapping[str, Any]) -> BatchOutcome:
    successful = {str(ok["Id"]): ok.get("MessageId") for ok in response.get("Successful", [])}
    return BatchOutcome(successful, _failures_from(response.get("Failed", [])))


def _sns_sender(topic_arn: str, client: SNSClient | None) -> SendBatch:
    def send(entries: Sequence[BatchEntry]) -> BatchOutcome:
        sns = client or aws.client("sns")  # created on first send, never at construction
        request: list[Any] = [_request_entry(entry, "Message") for entry in entries]
        return _outcome(sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=request))

    return send


def _sqs_sender(queue_url: str, client: SQSClient | None) -> SendBatch:
    def send(entries: Sequence[BatchEntry]) -> BatchOutcome:
        sqs = client or aws.client("sqs")  # created on first send, never at construction
        request: list[Any] = [_request_entry(entry, "MessageBody") for entry in entries]
        return _outcome(sqs.send_message_batch(QueueUrl=queue_url, Entries=request))

    return send


def _call_error(exc: Exception) -> tuple[str, str]:
    """``(code, message)`` of a whole-call failure: the service's error code, else the exception's type."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return str(error.get("Code") or "ClientError"), str(error.get("Message") or exc)
    return type(exc).__name__, str(exc)


@dataclass
class _Pending:
    entry_id: str
    message: OutgoingMessage
    size: int


class BatchPublisher:
    """Buffers messages and sends them in batches by count, byte size and age.

    Thread-safe: ``add()`` may be called from several threads. Batches leave in ``add()`` order
    (one send at a time), so only per-entry retries can reorder messages.
    """

    def __init__(
        self,
        *,
        send_batch: SendBatch,
        max_entries: int = AWS_MAX_BATCH_ENTRIES,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_interval_seconds: float | None = 1.0,
        max_attempts: int = 5,  # calls carrying an entry: the first, then resends of failed entries
        backoff_base_seconds: float = 0.05,
        backoff_max_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        validate: MessageValidator | None = None,
    ) -> None:
        if not 1 <= max_entries <= AWS_MAX_BATCH_ENTRIES:
            raise PublishError(
                f"max_entries must be in 1..{AWS_MAX_BATCH_ENTRIES} (AWS batch limit), got {max_entries}"
            )
        if max_batch_bytes < 1:
            raise PublishError(f"max_batch_bytes must be positive, got {max_batch_bytes}")
        if max_interval_seconds is not None and max_interval_seconds <= 0:
            raise PublishError(f"max_interval_seconds must be positive or None, got {max_interval_seconds}")
        if max_attempts < 1:
            raise PublishError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff_base_seconds < 0 or backoff_max_seconds < 0:
            raise PublishError("backoff seconds must not be negative")

        self._send_batch = send_batch
        self._max_entries = max_entries
        self._max_batch_bytes = max_batch_bytes
        self._max_interval = max_interval_seconds
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._sleep = sleep
        self._validate = validate

        # Lock order is always _send_lock -> _cond: sends are serialised (keeps batches in order),
        # while add() only needs _cond and is never blocked by a slow send unless the buffer is full.
        self._cond = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._buffer: list[_Pending] = []
        self._buffer_bytes = 0
        self._oldest_at = 0.0
        self._next_id = 0
        self._closed = False
        self._timer: threading.Thread | None = None
        self._results: dict[str, EntryResult] = {}

    @classmethod
    def for_topic(cls, topic_arn: str, *, client: SNSClient | None = None, **options: Any) -> BatchPublisher:
        """Publisher for an SNS topic (PublishBatch); the client is created on first send if omitted."""
        sender = _sns_sender(topic_arn, client)
        return cls(send_batch=sender, validate=_topic_validator(topic_arn), **options)

    @classmethod
    def for_queue(cls, queue_url: str, *, client: SQSClient | None = None, **options: Any) -> BatchPublisher:
        """Publisher for an SQS queue (SendMessageBatch); the client is created on first send if omitted."""
        sender = _sqs_sender(queue_url, client)
        return cls(send_batch=sender, validate=_queue_validator(queue_url), **options)

    # -- public API -----------------------------------------------------------------------------

    def add(self, message: OutgoingMessage | str) -> str:
        """Buffer one message and return its entry id; sends first when it would not fit the batch."""
        msg = OutgoingMessage(body=message) if isinstance(message, str) else message
        _validate_common(msg)
        if self._validate is not None:
            self._validate(msg)
        size = message_size(msg)
        if size > self._max_batch_bytes:
            raise PublishError(
                f"message is {size} bytes, larger than the batch limit of {self._max_batch_bytes} bytes"
            )

        while True:
            with self._cond:
                if self._closed:
                    raise PublishError("publisher is closed")
                fits = not self._buffer or (
                    len(self._buffer) < self._max_entries
                    and self._buffer_bytes + size <= self._max_batch_bytes
                )
                if fits:
                    entry_id = str(self._next_id)
                    self._next_id += 1
                    if not self._buffer:
                        self._oldest_at = time.monotonic()
                    self._buffer.append(_Pending(entry_id, msg, size))
                    self._buffer_bytes += size
                    full = len(self._buffer) >= self._max_entries
                    self._start_timer_locked()
                    self._cond.notify_all()
                    break
            # Does not fit: send what is buffered (outside _cond, see lock order), then try again.
            self._flush_buffer(due_only=False)

        if full:
            # A full batch gains nothing by waiting for the timer.
            self._flush_buffer(due_only=False)
        return entry_id

    def flush(self) -> list[EntryResult]:
        """Send everything buffered now; returns the results of this flush, in add() order."""
        return self._flush_buffer(due_only=False)

    def close(self) -> list[EntryResult]:
        """Stop the interval timer and flush; later add() calls raise PublishError. Idempotent."""
        with self._cond:
            self._closed = True
            timer = self._timer
            self._cond.notify_all()
        if timer is not None and timer is not threading.current_thread():
            timer.join()
        return self.flush()

    @property
    def results(self) -> list[EntryResult]:
        """Every result so far, in add() order (entry ids are sequential)."""
        with self._cond:
            return [self._results[key] for key in sorted(self._results, key=int)]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Also on exception: whatever was buffered still gets sent; the exception propagates.
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _start_timer_locked(self) -> None:
        """Start the timer thread on first add (lazily), so idle publishers cost no thread."""
        if self._max_interval is None or self._timer is not None:
            return
        self._timer = threading.Thread(
            target=self._run_timer, name=f"batch-publisher-timer-{id(self):x}", daemon=True
        )
        self._timer.start()

    def _run_timer(self) -> None:
        """Flush once the oldest buffered message is ``max_interval_seconds`` old."""
        interval = self._max_interval
        assert interval is not None  # only started when the timer is enabled
        while True:
            with self._cond:
                while not self._closed:
                    if not self._buffer:
                        self._cond.wait()
                        continue
                    remaining = self._oldest_at + interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closed:
                    return  # close() flushes what is left
            try:
                self._flush_buffer(due_only=True)
            except Exception:  # pragma: no cover - _deliver already turns errors into results
                logger.exception("interval flush failed")

    def _flush_buffer(self, *, due_only: bool) -> list[EntryResult]:
        with self._send_lock:
            with self._cond:
                if not self._buffer:
                    return []
                if due_only and time.monotonic() - self._oldest_at < (self._max_interval or 0.0):
                    return []  # someone else flushed meanwhile; the new oldest is not due yet
                batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
            results = self._deliver(batch)
            with self._cond:
                for result in results:
                    self._results[result.entry_id] = result
            return results

    def _backoff(self, retry_index: int) -> float:
        """Exponential backoff with full jitter, so throttled producers spread out instead of syncing up."""
        return random.uniform(0, min(self._backoff_max, self._backoff_base * 2**retry_index))

    def _deliver(self, batch: Sequence[_Pending]) -> list[EntryResult]:
        """Send one batch, resending only entries the service failed transiently; one result per entry."""
        outstanding: dict[str, OutgoingMessage] = {p.entry_id: p.message for p in batch}
        final: dict[str, EntryResult] = {}
        retry_errors: dict[str, tuple[str, str]] = {}
        attempt = 0
        while outstanding and attempt < self._max_attempts:
            if attempt:
                self._sleep(self._backoff(attempt - 1))
            attempt += 1
            retry_errors = self._send_once(outstanding, attempt, final)
            outstanding = {entry_id: outstanding[entry_id] for entry_id in retry_errors}

        for entry_id, (code, text) in retry_errors.items():
            final[entry_id] = EntryResult(entry_id, False, None, code, text, attempt)
        return [final[p.entry_id] for p in batch]

    def _send_once(
        self, outstanding: Mapping[str, OutgoingMessage], attempt: int, final: dict[str, EntryResult]
    ) -> dict[str, tuple[str, str]]:
        """One batch call: records settled entries in ``final``, returns retryable ones with their error.

        A call that raises settles every entry it carried as failed: the SDK client already retried
        it as far as it should be.
        """
        entries = [BatchEntry(entry_id, msg) for entry_id, msg in outstanding.items()]
        retry: dict[str, tuple[str, str]] = {}
        try:
            successful, failed = self._send_batch(entries)
        except Exception as exc:
            code, text = _call_error(exc)
            logger.error("batch of %d failed on attempt %d: %s: %s", len(entries), attempt, code, text)
            for entry_id in outstanding:
                final[entry_id] = EntryResult(entry_id, False, None, code, text, attempt)
            return {}

        for entry_id, message_id in successful.items():
            if entry_id in outstanding:
                final[entry_id] = EntryResult(entry_id, True, message_id, None, None, attempt)
        for failure in failed:
            entry_id = failure.entry_id
            if entry_id not in outstanding or entry_id in final:
                continue
            if failure.sender_fault:
                final[entry_id] = EntryResult(entry_id, False, None, failure.code, failure.message, attempt)
            else:
                retry[entry_id] = (failure.code, failure.message)
        for entry_id in outstanding:
            if entry_id not in final and entry_id not in retry:
                # Not retried: the service may have accepted it, and a resend could duplicate it.
                final[entry_id] = EntryResult(
                    entry_id, False, None, "MissingFromResponse", "no result for this entry", attempt
                )
        if retry:
            logger.warning(
                "%d of %d entries failed transiently on attempt %d", len(retry), len(entries), attempt
            )
        return retry
