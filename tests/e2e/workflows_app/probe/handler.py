"""Probe for the workflow conformance tests: one handler, its behaviour chosen by the event it receives.

- API Gateway proxy events (``httpMethod`` and ``requestContext``): answers 200 with the event as the body.
- SNS events (``Records[0].EventSource == "aws:sns"``): records the event under the message's ``id``.
- ``{"action": "flaky", "id", "failures"}``: counts the attempt and raises ``TransientError`` for the
  first ``failures`` attempts of that id.
- ``{"action": "reject", "id"}``: counts the attempt and always raises ``BusinessError``.
- ``{"action": "compensate", "id", ...}``: records the compensation under ``<id>#compensated``.
- ``{"action": "record", "id", ...}``: records the event under ``id`` (scheduler targets).

Only the standard library and boto3, as Lambda's Python runtime provides them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

TABLE = os.environ["TABLE_NAME"]
_dynamodb = boto3.client("dynamodb")


class TransientError(Exception):
    """A failure worth retrying."""


class BusinessError(Exception):
    """A failure no retry can fix."""


def _count_attempt(item_id: str) -> int:
    response = _dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": item_id}},
        UpdateExpression="ADD attempts :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    return int(response["Attributes"]["attempts"]["N"])


def _record(item_id: str, kind: str, event: Any) -> None:
    _dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": item_id}},
        UpdateExpression="ADD invocations :one SET kind = :kind, event = :event",
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":kind": {"S": kind},
            ":event": {"S": json.dumps(event)},
        },
    )


def handler(event: Any, context: Any) -> Any:
    if isinstance(event, dict) and "httpMethod" in event and "requestContext" in event:
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(event),
        }
    records = event.get("Records") if isinstance(event, dict) else None
    if records and records[0].get("EventSource") == "aws:sns":
        message = json.loads(records[0]["Sns"]["Message"])
        _record(message["id"], "sns", event)
        return {"recorded": message["id"]}
    action = event.get("action") if isinstance(event, dict) else None
    if action == "flaky":
        attempts = _count_attempt(event["id"])
        if attempts <= int(event.get("failures", 0)):
            raise TransientError(f"attempt {attempts} for {event['id']} failed")
        return {"id": event["id"], "attempts": attempts}
    if action == "reject":
        attempts = _count_attempt(event["id"])
        raise BusinessError(f"{event['id']} violates a business rule (attempt {attempts})")
    if action == "compensate":
        _record(f"{event['id']}#compensated", "compensated", event)
        return {"id": event["id"], "compensated": True}
    if action == "record":
        _record(event["id"], "record", event)
        return {"recorded": event["id"]}
    raise ValueError(f"the probe does not know this event: {json.dumps(event)[:200]}")
