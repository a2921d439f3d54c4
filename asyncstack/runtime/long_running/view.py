"""A job as callers see it (an API's ``GET``, a webhook's event, a dashboard), from its stored item.

Plain values (numbers as int or float, never ``Decimal``), the resume key left out (an internal
detail), and a failure only in its public form: a stable code and a generic sentence. The Cause
Step Functions caught (the Lambda error with its stack trace, ARNs, table names, source paths) goes
to the log only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from asyncstack.runtime.long_running.checkpoint import Checkpoint
from asyncstack.runtime.long_running.progress import Progress
from asyncstack.runtime.webhooks.state import WebhookState

__all__ = [
    "DEFAULT_FAILURE_MESSAGES",
    "TIMEOUT_ERRORS",
    "attribute_value",
    "from_item",
    "job_view",
    "public_failure",
    "view_of_item",
]

# What callers are told of a failure, by code; an app may word them for its jobs.
DEFAULT_FAILURE_MESSAGES: Mapping[str, str] = {
    "timeout": "The job did not finish in time.",
    "failed": "The job failed and was not completed. Quote the job id when asking for help.",
}
# The errors Step Functions reports for a run or a job that ran out of time.
TIMEOUT_ERRORS = frozenset({"States.Timeout", "Sandbox.Timedout"})

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_decimals(value: Any) -> Any:
    """TypeSerializer refuses floats (they are inexact); their shortest repr is what we mean."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {key: _to_decimals(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """Plain Python from a deserialized item: numbers as int or float, not Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    return value


def attribute_value(value: Any) -> Any:
    """``value`` as a DynamoDB attribute value (floats allowed)."""
    return _serializer.serialize(_to_decimals(value))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item (attribute-value form) as plain Python."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def public_failure(
    error: Mapping[str, Any], messages: Mapping[str, str] = DEFAULT_FAILURE_MESSAGES
) -> dict[str, str]:
    """``{"code", "message"}`` for a failure as recorded (or as Step Functions caught it: ``Error``).

    A failure recorded in its public form keeps the message its app wrote; older or raw ones get ``messages``."""
    code = str(error.get("code"))
    if code in messages and isinstance(error.get("message"), str):
        return {"code": code, "message": error["message"]}
    if code not in messages:
        code = "timeout" if (error.get("Error") or error.get("error")) in TIMEOUT_ERRORS else "failed"
    return {"code": code, "message": messages[code]}


def job_view(
    job: Mapping[str, Any], *, failure_messages: Mapping[str, str] = DEFAULT_FAILURE_MESSAGES
) -> dict[str, Any]:
    """The job as callers see it, from its item as plain Python."""
    checkpoint = Checkpoint.from_item(job.get("checkpoint"))
    webhook = job.get("webhook")
    return {
        "job_id": job["job_id"],
        "kind": job.get("kind"),
        "status": job.get("status"),
        "params": job.get("params", {}),
        "progress": Progress.from_dict(job.get("progress")).as_dict(),
        "result": job.get("result"),
        "error": None if job.get("error") is None else public_failure(job["error"], failure_messages),
        "runs": int(job.get("runs") or 0),
        "processing_ms": int(job.get("processing_ms") or 0),
        "checkpoint": {"next_chunk": checkpoint.next_chunk, "rows": checkpoint.rows},
        "created_at": job.get("created_at"),
        "started_at": job.get("started_at"),
        "finished_at": job.get("finished_at"),
        "webhook": WebhookState.from_dict(webhook).as_dict() if webhook else None,
    }


def view_of_item(
    item: Mapping[str, Any], *, failure_messages: Mapping[str, str] = DEFAULT_FAILURE_MESSAGES
) -> dict[str, Any]:
    """The job as callers see it, from a jobs-table item in DynamoDB's attribute-value form."""
    return job_view(from_item(item), failure_messages=failure_messages)
