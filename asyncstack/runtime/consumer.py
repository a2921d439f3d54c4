"""The queue-consumer framework every worker uses.

One ``EventConsumer`` per Lambda function turns an SQS batch into a partial batch response
(Powertools ``BatchProcessor``, or the FIFO processor) and adds the reliability rules:

* idempotency per record on the event's ``event_id`` (Powertools idempotency on DynamoDB);
* poison pills (malformed, schema-invalid, unknown type) go to the dead-letter queue at once
  with the reason as message attributes, instead of burning ``maxReceiveCount`` retries;
* transient failures come back after an exponential, fully jittered delay, set per message
  with ``ChangeMessageVisibility`` from its ``ApproximateReceiveCount``;
* graceful shutdown: close to the deadline, untouched records are reported as failures and
  made visible again at once, so nothing is lost and nothing runs twice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from asyncstack.runtime import aws
from asyncstack.runtime.errors import (
    ConflictingDuplicateError,
    DeadlineReachedError,
    NonRetryableError,
    TransientError,
)
from asyncstack.runtime.events import EventEnvelope, decode_event
from asyncstack.runtime.observability import logger, metrics
from asyncstack.runtime.settings import ConsumerSettings, consumer_settings

ProcessFn = Callable[[EventEnvelope, Any], Mapping[str, Any] | None]
Decoded = tuple[EventEnvelope, BaseModel]

SQS_MAX_ATTRIBUTES = 10
SQS_MAX_VISIBILITY_SECONDS = 43_200  # ChangeMessageVisibility refuses more than 12 hours
_ERROR_MESSAGE_LIMIT = 1024


class BulkSink(Protocol):
    """Writes a whole batch at once; returns ``event_id -> reason`` for the events it could not write."""

    def write(self, events: Sequence[Decoded]) -> Mapping[str, str]: ...


def backoff_seconds(receive_count: int, *, base: int, cap: int, rng: random.Random | None = None) -> int:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(n-1))] seconds."""
    ceiling = min(cap, base * 2 ** max(0, receive_count - 1))
    return (rng or random).randint(0, ceiling)


@dataclass
class EventConsumer:
    """Processes SQS batches of events of the ``accepts`` types with ``process`` (or ``bulk``).

    ``name`` keys the idempotency records, so it must stay stable across deployments.
    ``idempotent=False`` is for sinks whose writes are keyed by ``event_id`` already (a replay
    overwrites the same row), where an idempotency record per event would only add writes.
    """

    name: str
    accepts: Mapping[str, type[BaseModel]]
    process: ProcessFn | None = None
    bulk: BulkSink | None = None
    idempotent: bool = True
    fifo: bool = False
    settings_factory: Callable[[], ConsumerSettings] = consumer_settings
    sqs: Any = None
    dynamodb: Any = None
    _idempotent_process: Callable[..., Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.process is None) == (self.bulk is None):
            raise ValueError("give an EventConsumer exactly one of process= or bulk=")
        if self.bulk is not None and self.idempotent:
            raise ValueError("a bulk consumer writes keyed rows; construct it with idempotent=False")

    # -- the Lambda entry point -------------------------------------------------------------

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = self.settings_factory()
        # Another invocation's in-progress idempotency record lasts until its deadline at most: no
        # later than ours, as it started first. Retrying an event it holds sooner only burns receives.
        lock_seconds = math.ceil(context.get_remaining_time_in_millis() / 1000)
        records = event.get("Records", [])
        decoded = self._decode_all(records) if self.bulk else {}
        bulk_failures = self._write_bulk(decoded) if self.bulk else {}
        untouched: list[SQSRecord] = []

        def record_handler(record: SQSRecord) -> Mapping[str, Any] | None:
            if context.get_remaining_time_in_millis() < settings.shutdown_margin_ms:
                untouched.append(record)
                raise DeadlineReachedError("stopped before the function deadline; will be retried")
            try:
                item = decoded.get(record.message_id) or decode_event(record.body, self.accepts)
                if isinstance(item, NonRetryableError):
                    raise item
                envelope, data = item
                if self.bulk is not None:
                    return self._bulk_outcome(envelope, bulk_failures)
                return self._process_once(envelope, data, context)
            except NonRetryableError as error:
                self._dead_letter(record, error, settings)
                return {"dead_lettered": error.error_type}
            except IdempotencyAlreadyInProgressError as error:
                self._back_off(record, error, settings, at_least=lock_seconds)
                raise
            except TransientError as error:
                self._back_off(record, error, settings, at_least=error.retry_after_seconds)
                raise
            except Exception as error:
                self._back_off(record, error, settings)
                raise

        processor: BatchProcessor = SqsFifoPartialProcessor() if self.fifo else BatchProcessor(EventType.SQS)
        # A batch in which every record failed is still a valid partial response; raising
        # would turn it into a function error and hide real crashes in the error metric.
        processor.raise_on_entire_batch_failure = False
        response = process_partial_response(
            event=dict(event), record_handler=record_handler, processor=processor, context=context
        )
        if untouched:
            self._release(untouched, settings)
        return dict(response)

    # -- processing -------------------------------------------------------------------------

    def _process_once(self, envelope: EventEnvelope, data: BaseModel, context: LambdaContext) -> Any:
        assert self.process is not None
        if not self.idempotent:
            return self.process(envelope, data)
        self._idempotency_config.register_lambda_context(context)
        try:
            return self._idempotent()(event=envelope, data=data)
        except IdempotencyValidationError as error:
            raise ConflictingDuplicateError(
                f"event_id {envelope.event_id} was already processed with a different payload"
            ) from error

    @cached_property
    def _idempotency_config(self) -> IdempotencyConfig:
        return IdempotencyConfig(
            event_key_jmespath="event_id",
            payload_validation_jmespath="data",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.settings_factory().idempotency_ttl_seconds,
            use_local_cache=True,
        )

    def _idempotent(self) -> Callable[..., Any]:
        """Wrap ``process`` on first use, so the DynamoDB client is made per cold start, not at import."""
        if self._idempotent_process is None:
            table = self.settings_factory().idempotency_table_name
            if not table:
                raise RuntimeError("IDEMPOTENCY_TABLE_NAME is not set for an idempotent consumer")
            store = DynamoDBPersistenceLayer(
                table_name=table, boto3_client=self.dynamodb or aws.client("dynamodb")
            )
            process = self.process
            assert process is not None

            def run(event: EventEnvelope, data: BaseModel) -> Any:
                return process(event, data)

            self._idempotent_process = idempotent_function(
                run,
                data_keyword_argument="event",
                persistence_store=store,
                config=self._idempotency_config,
                key_prefix=self.name,
            )
        return self._idempotent_process

    def _decode_all(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Decoded | NonRetryableError]:
        decoded: dict[str, Decoded | NonRetryableError] = {}
        for raw in records:
            try:
                decoded[raw["messageId"]] = decode_event(raw["body"], self.accepts)
            except NonRetryableError as error:
                decoded[raw["messageId"]] = error
        return decoded

    def _write_bulk(self, decoded: Mapping[str, Decoded | NonRetryableError]) -> Mapping[str, str]:
        assert self.bulk is not None
        events = [item for item in decoded.values() if not isinstance(item, NonRetryableError)]
        return self.bulk.write(events) if events else {}

    @staticmethod
    def _bulk_outcome(envelope: EventEnvelope, failures: Mapping[str, str]) -> Mapping[str, Any]:
        if envelope.event_id in failures:
            raise TransientError(failures[envelope.event_id])
        return {"written": envelope.event_id}

    # -- failure handling -------------------------------------------------------------------

    @property
    def _sqs(self) -> Any:
        return self.sqs or aws.client("sqs")

    def _dead_letter(self, record: SQSRecord, error: NonRetryableError, settings: ConsumerSettings) -> None:
        dead_letter(self._sqs, record, error, settings, fifo=self.fifo)

    def _back_off(
        self, record: SQSRecord, error: Exception, settings: ConsumerSettings, at_least: int = 0
    ) -> None:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        delay = backoff_seconds(
            receive_count, base=settings.backoff_base_seconds, cap=settings.backoff_max_seconds
        )
        retry_later(self._sqs, record, error, settings, min(max(delay, at_least), SQS_MAX_VISIBILITY_SECONDS))

    def _release(self, records: Sequence[SQSRecord], settings: ConsumerSettings) -> None:
        release(self._sqs, records, settings)


# -- failure handling, shared with other SQS workers (asyncstack.runtime.rpc) ----------------------------


def dead_letter(
    sqs: Any, record: SQSRecord, error: NonRetryableError, settings: ConsumerSettings, *, fifo: bool = False
) -> None:
    """Send the record to the DLQ with why; if that fails the record fails and is retried."""
    attributes: dict[str, dict[str, str]] = {
        "error-type": {"DataType": "String", "StringValue": error.error_type},
        "error-message": {"DataType": "String", "StringValue": (str(error) or "-")[:_ERROR_MESSAGE_LIMIT]},
        "failed-at": {"DataType": "String", "StringValue": datetime.now(UTC).isoformat()},
        "source-queue-arn": {"DataType": "String", "StringValue": record.event_source_arn or "-"},
        "original-message-id": {"DataType": "String", "StringValue": record.message_id},
    }
    for name, value in (record.raw_event.get("messageAttributes") or {}).items():
        if len(attributes) >= SQS_MAX_ATTRIBUTES:
            break
        if value.get("stringValue") is not None and name not in attributes:
            attributes[name] = {
                "DataType": value.get("dataType", "String"),
                "StringValue": value["stringValue"],
            }
    params: dict[str, Any] = {
        "QueueUrl": settings.dead_letter_queue_url,
        "MessageBody": record.body or "-",
        "MessageAttributes": attributes,
    }
    if fifo:
        params["MessageGroupId"] = record.attributes.message_group_id or "dead-letter"
        params["MessageDeduplicationId"] = record.message_id
    sqs.send_message(**params)
    logger.warning(
        "record dead-lettered",
        extra={"message_id": record.message_id, "error_type": error.error_type, "reason": str(error)},
    )
    metrics.add_metric(name="RecordsDeadLettered", unit=MetricUnit.Count, value=1)


def retry_later(
    sqs: Any, record: SQSRecord, error: Exception, settings: ConsumerSettings, delay: int
) -> None:
    """Delay the message's next delivery by ``delay`` s; best effort, the visibility timeout is the fallback."""
    logger.warning(
        "record failed, will retry",
        extra={"message_id": record.message_id, "error": repr(error),
               "receive_count": record.attributes.approximate_receive_count, "retry_in_seconds": delay},
    )  # fmt: skip
    metrics.add_metric(name="RecordsRetried", unit=MetricUnit.Count, value=1)
    try:
        sqs.change_message_visibility(
            QueueUrl=settings.queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
        )
    except Exception:  # the retry still happens after the queue's visibility timeout
        logger.exception("could not set the retry delay", extra={"message_id": record.message_id})


def release(sqs: Any, records: Sequence[SQSRecord], settings: ConsumerSettings) -> None:
    """Make records never started visible again now, instead of after the visibility timeout."""
    metrics.add_metric(name="RecordsReleasedAtDeadline", unit=MetricUnit.Count, value=len(records))
    for start in range(0, len(records), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": record.receipt_handle, "VisibilityTimeout": 0}
            for i, record in enumerate(records[start : start + 10])
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=settings.queue_url, Entries=entries)
        except Exception:
            logger.exception("could not release records at the deadline")
