"""A Lambda-backed custom resource: records each request it gets and answers through the response URL
as CloudFormation's protocol has it (a PUT of a JSON document). ``Fail`` in the properties: FAILED."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> None:
    properties = event.get("ResourceProperties", {})
    print(json.dumps({"request": event["RequestType"], "physical_id": event.get("PhysicalResourceId")}))
    table = os.environ.get("TABLE_NAME")
    if table:
        boto3.client("dynamodb").put_item(
            TableName=table,
            Item={
                "pk": {"S": f"request#{event['RequestType']}#{event['RequestId']}"},
                "event": {"S": json.dumps(event)},
            },
        )
    failed = "Fail" in properties
    body = {
        "Status": "FAILED" if failed else "SUCCESS",
        "Reason": properties["Fail"] if failed else "",
        # A new name replaces the resource: a new physical id, and CloudFormation deletes the old one.
        "PhysicalResourceId": f"probe-{properties.get('Name', event['LogicalResourceId'])}",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Echo": properties.get("Name", "")},
    }
    request = urllib.request.Request(
        event["ResponseURL"], data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
