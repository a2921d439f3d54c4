"""Records every S3 event record it gets (bucket notifications to Lambda)."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote_plus

import boto3


def handler(event: dict[str, Any], context: Any) -> None:
    client = boto3.client("dynamodb")
    for record in event["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 URL-encodes the key in events
        client.put_item(
            TableName=os.environ["TABLE_NAME"],
            Item={"pk": {"S": f"object#{key}"}, "record": {"S": json.dumps(record)}},
        )
