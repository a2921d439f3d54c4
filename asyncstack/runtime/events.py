"""The event envelope every message carries, and the decoder that turns a body into typed data.

Every event carries a stable ``event_id`` chosen by its producer. Consumers key idempotency
on it, never on the SQS or SNS message id: a redelivery or a republish gets a new message id
but keeps the ``event_id``. A body that can never decode raises a ``NonRetryableError``, so the
consumer dead-letters it at once with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
)

from asyncstack.runtime.errors import MalformedJsonError, SchemaInvalidError, UnknownEventTypeError

__all__ = [
    "MAX_NESTING",
    "EventEnvelope",
    "EventId",
    "StrictModel",
    "decode_event",
    "describe_validation_error",
    "new_envelope",
    "unwrap_sns_notification",
]

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]

MAX_NESTING = 100
"""The deepest a body's JSON may nest (objects and arrays). Pydantic cannot serialize much past 250
levels, and the idempotency layer serializes every event: a deeper one would fail on every retry."""


def _utc_unless_writable(value: datetime) -> datetime:
    """JSON (RFC 3339) offsets have whole minutes: one with seconds would change the instant when
    the envelope is encoded, so such a time is kept in UTC instead."""
    offset = value.utcoffset()
    if offset is None or not offset % timedelta(minutes=1):
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("the time is out of range once in UTC") from error


class StrictModel(BaseModel):
    """Event data: unknown fields are refused (a typo is a schema error, not silently dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventEnvelope(StrictModel):
    """What travels on topics and queues: metadata plus a typed ``data`` payload."""

    event_id: EventId
    type: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    occurred_at: Annotated[AwareDatetime, AfterValidator(_utc_unless_writable)]
    data: dict[str, Any]


def new_envelope(
    event_type: str, data: BaseModel, *, source: str, event_id: str | None = None
) -> EventEnvelope:
    """Wrap ``data`` for publishing; ``event_id`` defaults to a fresh UUID."""
    return EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        type=event_type,
        source=source,
        occurred_at=datetime.now(UTC),
        data=data.model_dump(mode="json"),
    )


def unwrap_sns_notification(body: Mapping[str, Any]) -> Any:
    """Accept subscriptions without raw delivery too: SNS then wraps the event in a notification."""
    if body.get("Type") == "Notification" and "TopicArn" in body and isinstance(body.get("Message"), str):
        return _loads(body["Message"])
    return body


def decode_event(body: str, accepted_types: Mapping[str, type[BaseModel]]) -> tuple[EventEnvelope, BaseModel]:
    """Parse a message body into its envelope and typed data, or raise a ``NonRetryableError``."""
    raw = _loads(body)
    if not isinstance(raw, dict):
        raise SchemaInvalidError(f"body must be a JSON object, got {type(raw).__name__}")
    raw = unwrap_sns_notification(raw)
    if _nesting(raw) > MAX_NESTING:
        raise SchemaInvalidError(f"body nests deeper than {MAX_NESTING} levels")
    try:
        envelope = parse(event=raw, model=EventEnvelope)
    except (ValidationError, InvalidModelTypeError) as error:
        raise SchemaInvalidError(describe_validation_error(error)) from error
    model = accepted_types.get(envelope.type)
    if model is None:
        raise UnknownEventTypeError(f"event type {envelope.type!r} is not one of {sorted(accepted_types)}")
    try:
        return envelope, parse(event=envelope.data, model=model)
    except (ValidationError, InvalidModelTypeError) as error:
        raise SchemaInvalidError(f"{envelope.type}: {describe_validation_error(error)}") from error


def _loads(text: str) -> Any:
    # ValueError: not JSON, bytes that are not UTF-8, or an integer over Python's 4300 digits;
    # RecursionError: nesting deeper than the interpreter's limit. All are the body's fault.
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError) as error:
        raise MalformedJsonError(f"body is not valid JSON: {error}") from error


def _nesting(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (a scalar is 0), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((child, depth + 1) for child in children)
    return deepest


def describe_validation_error(error: Exception) -> str:
    """A field-by-field summary, short enough for an SQS message attribute."""
    if not isinstance(error, ValidationError):
        return str(error)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()[:5]]
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
