"""Bucket events and custom resources on the local cloud, as CloudFormation and S3 behave.

The stacks are ``tests/e2e/bucket_events_app/app.py``, deployed with the CDK CLI: a bucket whose event
notifications CDK configures through its own custom resource (a Lambda function that calls
PutBucketNotificationConfiguration), and a Lambda-backed custom resource that records every request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from localcloud.cloud import LocalCloud
from localcloud.cloudformation import custom_resources
from localcloud.cloudformation.custom_resources import LATE_RESPONSE_SECONDS
from localcloud.server import LocalCloudError

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "bucket_events_app" / "app.py"
STACK = "BucketEventsStack"
TIMEOUT = 30.0


def _deploy(cloud: LocalCloud, stack: str, **context: str) -> dict[str, str]:
    return cloud.deploy([stack], app=f"{sys.executable} {APP}", context=context).outputs


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return _deploy(cloud, STACK)


def _requests(cloud: LocalCloud, outputs: dict[str, str], request_type: str) -> list[dict[str, Any]]:
    """The custom resource requests of ``request_type`` the function recorded, oldest first."""
    items = cloud.client("dynamodb").scan(TableName=outputs["TableName"], ConsistentRead=True)["Items"]
    return [
        json.loads(item["event"]["S"])
        for item in items
        if item["pk"]["S"].startswith(f"request#{request_type}#")
    ]


def _object_events(cloud: LocalCloud, queue_url: str) -> list[dict[str, Any]]:
    """The S3 event records waiting in the queue (the configuration's s3:TestEvent left out)."""
    sqs, records = cloud.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            records += json.loads(message["Body"]).get("Records", [])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_a_custom_resource_gets_its_properties_as_strings_and_its_answer_reaches_the_template(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """CloudFormation passes a custom resource's scalar properties as strings and waits for its response:
    the response's PhysicalResourceId is its Ref and its Data what Fn::GetAtt reads."""
    # Given the stack deployed with a custom resource whose properties hold booleans, numbers and nesting
    (create,) = _requests(cloud, outputs, "Create")
    # Then the function got a Create request with every scalar as a string
    properties = {k: v for k, v in create["ResourceProperties"].items() if k != "ServiceToken"}
    assert properties == {
        "Flag": "true", "Count": "3", "Ratio": "0.5", "Name": "probe", "Nested": {"On": "false"},
        "List": ["1", "a", "true"],
    }  # fmt: skip
    assert create["ResourceType"] == "AWS::CloudFormation::CustomResource"
    assert create["LogicalResourceId"] == "Probe" and "PhysicalResourceId" not in create
    # And the stack's outputs read the response: Ref is the physical id, GetAtt the response's Data
    assert outputs["ProbeId"] == "probe-probe"
    assert outputs["ProbeEcho"] == "probe"
    # And once the functions have returned, no request is left waiting for an answer
    cloud.wait_until(lambda: not custom_resources._pending, LATE_RESPONSE_SECONDS + 5, "no pending request")


def test_a_custom_resource_that_answers_failed_fails_the_stack_with_cloudformations_reason(
    cloud: LocalCloud,
) -> None:
    """A FAILED response fails the resource, and the stack rolls back with the reason the function gave."""
    # When a stack whose custom resource answers FAILED is deployed
    with pytest.raises(LocalCloudError) as failed:
        _deploy(cloud, "FailingResourceStack")
    # Then the CLI reports CloudFormation's words for it, and the stack is rolled back
    assert "Received response status [FAILED] from custom resource. Message returned: quota exceeded" in str(
        failed.value
    )
    stack = cloud.client("cloudformation").describe_stacks(StackName="FailingResourceStack")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"


def test_bucket_notifications_deliver_object_events_to_sqs_and_lambda_by_their_filters(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """S3 sends an event for each object created to every notification whose prefix/suffix filter matches."""
    s3, bucket = cloud.client("s3"), outputs["BucketName"]
    # Given the notifications CDK's custom resource configured: in/* to a queue, *.json to a function
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert len(configuration["QueueConfigurations"]) == 1
    assert len(configuration["LambdaFunctionConfigurations"]) == 1
    _object_events(cloud, outputs["QueueUrl"])  # the s3:TestEvent S3 sends on configuration
    # When objects are created under and outside each filter
    for key in ("in/a b.txt", "b.json", "c.txt", "in/d.json"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    # Then the queue gets ObjectCreated:Put records for in/ only, their keys URL-encoded as S3 sends them
    records = _object_events(cloud, outputs["QueueUrl"])
    assert sorted(r["s3"]["object"]["key"] for r in records) == [
        quote_plus("in/a b.txt"),
        quote_plus("in/d.json"),
    ]
    assert {r["eventName"] for r in records} == {"ObjectCreated:Put"}
    assert {r["s3"]["bucket"]["name"] for r in records} == {bucket}

    # and the function is invoked for the .json objects only
    def recorded() -> set[str]:
        items = cloud.client("dynamodb").scan(TableName=outputs["TableName"], ConsistentRead=True)["Items"]
        return {item["pk"]["S"] for item in items if item["pk"]["S"].startswith("object#")}

    cloud.wait_until(lambda: len(recorded()) >= 2, TIMEOUT, "the function's object events")
    assert recorded() == {"object#b.json", "object#in/d.json"}


def test_bucket_events_reach_an_sns_topic_and_eventbridge_as_s3_sends_them(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """A topic notification gets S3's event records; with EventBridge on, the default bus gets an
    "Object Created" event that rules match on its detail (S3's "EventBridge message structure")."""
    s3, bucket, sqs = cloud.client("s3"), outputs["BucketName"], cloud.client("sqs")
    # When an object is created under the topic's prefix
    s3.put_object(Bucket=bucket, Key="reports/q1.csv", Body=b"a,b")

    def waiting(url: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def more() -> bool:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            ):
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return any("Records" in body or "detail" in body for body in found)

        cloud.wait_until(more, TIMEOUT, f"a bucket event in {url}")
        return [body for body in found if "Records" in body or "detail" in body]

    # Then the topic's subscriber got the S3 event record
    (notice,) = waiting(outputs["ReportedQueueUrl"])
    (record,) = notice["Records"]
    assert record["eventName"] == "ObjectCreated:Put" and record["s3"]["object"]["key"] == "reports%2Fq1.csv"
    # And the rule on the default bus got EventBridge's event, with ISO time, etag and S3's reason
    (event,) = waiting(outputs["BusQueueUrl"])
    assert event["source"] == "aws.s3" and event["detail-type"] == "Object Created"
    assert (
        event["detail"]["bucket"]["name"] == bucket and event["detail"]["object"]["key"] == "reports/q1.csv"
    )
    assert event["detail"]["reason"] == "PutObject" and event["detail"]["object"]["size"] == 3
    assert event["detail"]["object"]["etag"] and event["time"].endswith("Z")


def test_a_changed_property_sends_an_update_and_the_replaced_resource_is_deleted(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """Update carries the new and old properties and the physical id; a response with a new physical id
    replaces the resource, and CloudFormation sends the old one a Delete."""
    # When the stack is deployed again with a new name for the custom resource
    updated = _deploy(cloud, STACK, probe_name="renamed")
    # Then the function got an Update with the old properties and the old physical id
    (update,) = _requests(cloud, outputs, "Update")
    assert update["ResourceProperties"]["Name"] == "renamed"
    assert update["OldResourceProperties"]["Name"] == "probe"
    assert update["PhysicalResourceId"] == "probe-probe"
    # and a Delete for the resource it replaced
    (delete,) = _requests(cloud, outputs, "Delete")
    assert delete["PhysicalResourceId"] == "probe-probe"
    # And the outputs read the new response
    assert updated["ProbeId"] == "probe-renamed" and updated["ProbeEcho"] == "renamed"


def test_deleting_the_stack_sends_the_custom_resources_a_delete_before_their_functions_go(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """CloudFormation deletes dependents first: each custom resource's Delete reaches its function, and
    CDK's Node.js auto-delete handler empties the bucket so that the bucket can be deleted."""
    s3 = cloud.client("s3")
    assert s3.list_objects_v2(Bucket=outputs["BucketName"])["KeyCount"] > 0  # the objects of the tests above
    cloudformation = cloud.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    physical_id = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["ProbeId"]
    # When the stack is deleted
    cloudformation.delete_stack(StackName=STACK)
    # Then the function logged a Delete for the resource's physical id before it was deleted itself
    logs = cloud.client("logs")

    def deletes() -> list[dict[str, Any]]:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{outputs['ProviderName']}")["events"]
        lines = [json.loads(e["message"]) for e in events if e["message"].startswith("{")]
        return [line for line in lines if line.get("request") == "Delete"]

    cloud.wait_until(
        lambda: any(d["physical_id"] == physical_id for d in deletes()),
        TIMEOUT,
        "the Delete in the function's log",
    )
    stacks = cloudformation.list_stacks()["StackSummaries"]
    assert any(s["StackName"] == STACK and s["StackStatus"] == "DELETE_COMPLETE" for s in stacks)
    # And CDK's Node.js auto-delete handler got its Delete (its log reaches CloudWatch Logs a moment
    # after it ran), and the bucket it emptied is gone
    (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{STACK}-CustomS3AutoDeleteObjects")[
        "logGroups"
    ]

    def auto_delete_logged() -> bool:
        events = logs.filter_log_events(logGroupName=group["logGroupName"])["events"]
        return any('"RequestType": "Delete"' in event["message"] for event in events)

    cloud.wait_until(auto_delete_logged, TIMEOUT, "the auto-delete handler's Delete in its log")
    assert outputs["BucketName"] not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
