"""The job message: what the worker receives from either path (an SQS delay or a Scheduler schedule).

On the wire it is an event envelope (``event_id`` = the job key, ``type`` = the job type, ``data`` =
the payload plus ``due_at``), so the consumer framework runs jobs with its idempotency and poison
handling. Recurring schedules (``asyncstack.cdk.delayed_jobs``) write the same shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from asyncstack import contract
from asyncstack.runtime.errors import MalformedJsonError, SchemaInvalidError
from asyncstack.runtime.events import EventEnvelope
from asyncstack.runtime.jobs.errors import (
    InvalidJobKeyError,
    InvalidPayloadError,
    PayloadNotSerializableError,
)
from asyncstack.runtime.timestamps import iso

__all__ = [
    "DUE_AT_FIELD",
    "JOB_SOURCE",
    "KEY_ATTRIBUTE",
    "MAX_JOB_KEY_LENGTH",
    "TYPE_ATTRIBUTE",
    "JobMessage",
    "check_job_key",
    "job_body",
    "message_attributes",
    "sqs_message_size",
]

JOB_SOURCE = contract.JOB_MESSAGE_SOURCE
MAX_JOB_KEY_LENGTH = 128  # the job key is the message's event_id
DUE_AT_FIELD = contract.JOB_DUE_AT_FIELD
# SQS message attributes, so a queue's messages can be told apart without parsing their bodies.
KEY_ATTRIBUTE = "job-key"
TYPE_ATTRIBUTE = "job-type"
_STRING = "String"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")


class JobMessage(BaseModel):
    """A job as the worker receives it."""

    model_config = ConfigDict(frozen=True)

    job_key: str
    job_type: str
    payload: dict[str, Any]
    due_at: AwareDatetime
    scheduled_at: AwareDatetime

    @classmethod
    def parse(cls, body: str | bytes) -> Self:
        """Parse a job message; raises the stack's non-retryable errors, as no retry can fix it."""
        try:
            envelope = EventEnvelope.model_validate_json(body)
            data = dict(envelope.data)
            return cls(job_key=envelope.event_id, job_type=envelope.type, due_at=data.pop(DUE_AT_FIELD, None),
                       payload=data, scheduled_at=envelope.occurred_at)  # fmt: skip
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise MalformedJsonError(f"job body is not JSON: {exc}") from exc
            raise SchemaInvalidError(f"job body is not a job message: {exc}") from exc


def check_job_key(key: object) -> str:
    """``key`` if it can key a job (and be its message's ``event_id``), else ``InvalidJobKeyError``."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidJobKeyError("job key must be a non-empty string")
    if len(key) > MAX_JOB_KEY_LENGTH:
        raise InvalidJobKeyError(f"job key must be at most {MAX_JOB_KEY_LENGTH} characters, got {len(key)}")
    if not _KEY_PATTERN.match(key):
        raise InvalidJobKeyError(f"job key {key!r} may contain only letters, digits and . _ : -")
    return key


def job_body(key: str, job_type: str, payload: Mapping[str, Any], *, due: datetime, now: datetime) -> str:
    """The message body: ASCII-escaped compact JSON, so characters equal bytes for the size limits."""
    if not isinstance(payload, Mapping):
        raise PayloadNotSerializableError(f"payload must be a mapping, got {type(payload).__name__}")
    if DUE_AT_FIELD in payload:
        raise InvalidPayloadError(
            f"payload key {DUE_AT_FIELD!r} is reserved: the job's due time travels under it"
        )
    document = {
        "event_id": key,
        "type": job_type,
        "source": JOB_SOURCE,
        "occurred_at": iso(now),
        "data": {**payload, DUE_AT_FIELD: iso(due)},
    }
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadNotSerializableError(f"payload is not JSON-serialisable: {exc}") from exc


def message_attributes(key: str, job_type: str) -> dict[str, Any]:
    """The SQS message attributes of a job message."""
    return {
        KEY_ATTRIBUTE: {"DataType": _STRING, "StringValue": key},
        TYPE_ATTRIBUTE: {"DataType": _STRING, "StringValue": job_type},
    }


def sqs_message_size(body: str, key: str, job_type: str) -> int:
    """The size SQS counts against its limit: the body and every attribute's name, type and value."""
    size = len(body.encode("utf-8"))
    for name, value in ((KEY_ATTRIBUTE, key), (TYPE_ATTRIBUTE, job_type)):
        size += len(name.encode("utf-8")) + len(_STRING) + len(value.encode("utf-8"))
    return size
