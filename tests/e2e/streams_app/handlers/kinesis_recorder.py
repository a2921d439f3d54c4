"""Records every Kinesis record it is given, in the order it handles them."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import boto3

sink = boto3.client("dynamodb")


def handler(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        kinesis = record["kinesis"]
        sink.put_item(
            TableName=os.environ["SINK_TABLE"],
            Item={
                "pk": {"S": "seen#kinesis"},
                "sk": {"S": f"{time.time_ns():020d}-{kinesis['sequenceNumber']}"},
                "key": {"S": kinesis["partitionKey"]},
                "data": {"S": base64.b64decode(kinesis["data"]).decode()},
                "batch_size": {"N": str(len(event["Records"]))},
                "record": {"S": json.dumps(record)},
            },
        )
