"""Records every stream record it is given, in the order it handles them.

An item whose new image has ``fail_times`` N fails its first N deliveries; ``poison`` fails every one.
A failure fails the whole batch, or with ``REPORT_FAILURES`` is reported as a batch item failure.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

sink = boto3.client("dynamodb")


class RecordFailed(Exception):
    """A record asked to fail."""


def _attempt(table: str, key: str, sequence: str) -> int:
    """This record's delivery count, this one included."""
    answer = sink.update_item(
        TableName=os.environ["SINK_TABLE"],
        Key={"pk": {"S": f"attempts#{table}"}, "sk": {"S": f"{key}#{sequence}"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="UPDATED_NEW",
    )
    return int(answer["Attributes"]["n"]["N"])


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        table = record["eventSourceARN"].split(":table/", 1)[1].split("/", 1)[0]
        change = record["dynamodb"]
        key, sequence = change["Keys"]["pk"]["S"], change["SequenceNumber"]
        image = change.get("NewImage") or {}
        if "poison" in image or _attempt(table, key, sequence) <= int(
            image.get("fail_times", {"N": "0"})["N"]
        ):
            if os.environ.get("REPORT_FAILURES"):
                failures.append({"itemIdentifier": sequence})
                continue
            raise RecordFailed(f"{key} asked to fail")
        sink.put_item(
            TableName=os.environ["SINK_TABLE"],
            Item={
                "pk": {"S": f"seen#{table}"},
                "sk": {"S": f"{time.time_ns():020d}-{sequence}"},
                "key": {"S": key},
                "sequence": {"S": sequence},
                "event_name": {"S": record["eventName"]},
                "batch_size": {"N": str(len(event["Records"]))},
                "record": {"S": json.dumps(record)},
            },
        )
    return {"batchItemFailures": failures}
