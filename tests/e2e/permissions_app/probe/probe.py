"""Tries what the event asks with the function's own credentials and says what AWS answered."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:  # called by the API
        return {"statusCode": 200, "body": "{}"}
    try:
        if "table" in event:
            boto3.client("dynamodb").put_item(TableName=event["table"], Item={"pk": {"S": "probe"}})
        elif "queue" in event:
            boto3.client("sqs").send_message(QueueUrl=event["queue"], MessageBody="probe")
        else:
            return {"identity": boto3.client("sts").get_caller_identity()["Arn"]}
    except ClientError as error:
        return {"error": error.response["Error"]["Code"], "message": error.response["Error"]["Message"]}
    return {"ok": True}
