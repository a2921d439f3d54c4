"""The conformance probe: one Lambda handler whose behaviour the event drives.

SQS batches (``{"Records": [...]}``) carry bodies like ``{"run": "...", "id": "...", "fail": true,
"sleep": 1.5, "seq": 3}``: the probe sleeps if asked, records every record it sees and every
invocation (start, end, records) in the observation table, and reports the records that asked to
fail as batch item failures. Direct events name an ``action``: ``context``, ``clock``, ``sleep``,
``fail``, ``print`` or ``ok``. Only the standard library and boto3, as Lambda's Python runtime provides.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3

# A module is imported once per execution environment: this id tells environments apart.
ENVIRONMENT_ID = uuid.uuid4().hex
IMPORTED_AT = time.time()  # what the init code read as now


class ProbeFailure(Exception):
    """The failure a probe event asked for."""


@functools.cache
def _table() -> Any:
    return boto3.resource("dynamodb").Table(os.environ["PROBE_TABLE_NAME"])


def _number(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def _sqs_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Observe first, write afterwards: the first write of an environment creates the boto3 resource,
    # which must not delay the times recorded.
    started = time.time()
    records = event["Records"]
    items, failures = [], []
    by_run: dict[str, list[str]] = {}
    for index, record in enumerate(records):
        body = json.loads(record["body"])
        seen = time.time()
        if body.get("sleep"):
            time.sleep(float(body["sleep"]))
        attributes = record["attributes"]
        items.append(
            {
                "pk": f"{body['run']}#records",
                "sk": f"{int(seen * 1e9):020d}-{context.aws_request_id}-{index:02d}",
                "id": body["id"],
                "seq": int(body.get("seq", 0)),
                "group": attributes.get("MessageGroupId", ""),
                "message_id": record["messageId"],
                "receive_count": int(attributes["ApproximateReceiveCount"]),
                "first_receive": int(attributes.get("ApproximateFirstReceiveTimestamp", 0)),
                "at": _number(seen),
                "invocation": context.aws_request_id,
                "batch_size": len(records),
                "environment": ENVIRONMENT_ID,
                "queue": record["eventSourceARN"],
            }
        )
        by_run.setdefault(body["run"], []).append(body["id"])
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    ended = time.time()
    for run, ids in by_run.items():
        items.append(
            {
                "pk": f"{run}#invocations",
                "sk": f"{int(started * 1e9):020d}-{context.aws_request_id}",
                "start": _number(started),
                "end": _number(ended),
                "ids": ids,
                "batch_size": len(records),
                "environment": ENVIRONMENT_ID,
            }
        )
    with _table().batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)
    return {"batchItemFailures": failures}


def _context(context: Any) -> dict[str, Any]:
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": int(context.memory_limit_in_mb),
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "env": {
            name: os.environ.get(name)
            for name in (
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_REGION",
                "PROBE_MARK",
            )
        },
    }


def handler(event: dict[str, Any], context: Any) -> Any:
    if "Records" in event:
        return _sqs_batch(event, context)
    action = event.get("action", "ok")
    reply: dict[str, Any] = {"environment": ENVIRONMENT_ID, "pid": os.getpid(), "id": event.get("id")}
    if action == "context":
        return reply | _context(context)
    if action == "clock":
        return reply | {
            "time": time.time(),
            "datetime_now": datetime.now(UTC).timestamp(),
            "today": date.today().isoformat(),
            "imported_at": IMPORTED_AT,
            "remaining_ms": context.get_remaining_time_in_millis(),
        }
    if action == "sleep":
        time.sleep(float(event["seconds"]))
        return reply | {"slept": event["seconds"]}
    if action == "fail":
        raise ProbeFailure(event.get("message", "the probe was asked to fail"))
    if action == "print":
        print(event["line"])
        return reply | {"log_group_name": context.log_group_name, "log_stream_name": context.log_stream_name}
    return reply
