"""Turn SQS ``ReceiveMessage`` results into the event Lambda's SQS event source mapping sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RECEIVE_ATTRIBUTES = ["All"]


def _attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": list(value.get("BinaryListValues", [])),
        "dataType": value.get("DataType", "String"),
    }


def lambda_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record, shaped as Lambda delivers it (camelCase keys, attributes as strings)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
        "messageAttributes": {k: _attribute(v) for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def lambda_event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [lambda_record(m, queue_arn=queue_arn, region=region) for m in messages]}


def failed_message_ids(response: Any) -> set[str] | None:
    """The ids a partial batch response reports as failed; None if the response is not one.

    Lambda treats a malformed response as a failure of the whole batch.
    """
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures", [])
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        if not isinstance(failure, Mapping) or not failure.get("itemIdentifier"):
            return None
        ids.add(str(failure["itemIdentifier"]))
    return ids
