"""Permissions on the local cloud: a function calls with its execution role's credentials and a call its
policies do not allow is denied as AWS denies it (IAM's "Policy evaluation logic").

The stack is ``tests/e2e/permissions_app/app.py``, deployed with the CDK CLI: a function granted
writes to one table, and nothing on another table or on a queue.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "permissions_app" / "app.py"
ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> Iterator[dict[str, str]]:
    deployed = cloud.deploy(["PermissionsStack"], app=f"{sys.executable} {APP}").outputs
    yield deployed
    # The mappings whose role may not read are refused again and again: stopped for the tests that follow
    lambda_ = cloud.client("lambda")
    for mapping in lambda_.list_event_source_mappings(FunctionName=deployed["ProbeName"])[
        "EventSourceMappings"
    ]:
        lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)


@pytest.fixture
def enforcing(cloud: LocalCloud) -> Iterator[None]:
    saved, cloud.permissions.mode = cloud.permissions.mode, "enforce"
    try:
        yield
    finally:
        cloud.permissions.mode = saved


def probe(cloud: LocalCloud, outputs: dict[str, str], event: dict[str, str]) -> Any:
    answer = cloud.client("lambda").invoke(
        FunctionName=outputs["ProbeName"], Payload=json.dumps(event).encode()
    )
    return json.loads(answer["Payload"].read())


def test_a_function_calls_as_its_execution_role(cloud: LocalCloud, outputs: dict[str, str]) -> None:
    """Lambda gives a function temporary credentials for its execution role: STS names the assumed role."""
    role = outputs["ProbeRoleArn"].rsplit("/", 1)[-1]
    identity = probe(cloud, outputs, {})["identity"]
    assert identity == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{outputs['ProbeName']}"


def test_a_call_the_role_allows_succeeds_and_one_it_does_not_is_denied_with_aws_words(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    # When the function writes to the table it was granted, then to another one
    assert probe(cloud, outputs, {"table": outputs["GrantedTable"]}) == {"ok": True}
    denied = probe(cloud, outputs, {"table": outputs["OtherTable"]})
    # Then the second write is refused as DynamoDB refuses it, naming the role, action and table
    role = outputs["ProbeRoleArn"].rsplit("/", 1)[-1]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{outputs['OtherTable']}"
    assert denied == {
        "error": "AccessDeniedException",
        "message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{outputs['ProbeName']} is not authorized "
        f"to perform: dynamodb:PutItem on resource: {table} because no identity-based policy allows the "
        "dynamodb:PutItem action",
    }
    # And an ungranted queue refuses the send with SQS's own error code
    assert probe(cloud, outputs, {"queue": outputs["QueueUrl"]})["error"] == "AccessDenied"
    # And the denials are counted in status, the latest with what was refused
    iam = cloud.status()["iam"]
    assert (
        iam["denied_by_action"]["dynamodb:PutItem"] >= 1 and iam["denied_by_action"]["sqs:SendMessage"] >= 1
    )
    assert {(d["action"], d["resource"], d["enforced"]) for d in iam["recent_denials"]} >= {
        ("dynamodb:PutItem", table, True)
    }


def test_status_lists_what_a_role_is_granted_but_no_call_used(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """Least privilege from the other side, like IAM Access Analyzer's unused-access findings."""
    # Given the function wrote to its table (grant_write_data also grants deletes, updates, batches)
    assert probe(cloud, outputs, {"table": outputs["GrantedTable"]}) == {"ok": True}
    # Then status lists the granted actions no call used, and not the one used
    unused = cloud.status()["iam"]["unused"][outputs["ProbeRoleArn"]]
    actions = {grant["action"] for grant in unused}
    assert "dynamodb:DeleteItem" in actions and "dynamodb:BatchWriteItem" in actions
    assert "dynamodb:PutItem" not in actions


def _received(cloud: LocalCloud, queue_url: str, wait: int) -> list[str]:
    answer = cloud.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
    )
    return [m["Body"] for m in answer.get("Messages", [])]


def _latest_denial(cloud: LocalCloud, action: str) -> dict[str, Any]:
    return [d for d in cloud.status()["iam"]["recent_denials"] if d["action"] == action][-1]


def test_sns_delivers_only_to_a_queue_whose_policy_lets_the_topic_send(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """SNS sends as sns.amazonaws.com: the queue policy must allow sqs:SendMessage for the topic's ARN
    (SNS developer guide, "Sending Amazon SNS messages to an Amazon SQS queue"); what it cannot deliver
    goes to the subscription's dead-letter queue ("Amazon SNS dead-letter queues")."""
    # When a message is published to the topic both queues are subscribed to
    cloud.client("sns").publish(TopicArn=outputs["TopicArn"], Message="from the topic")
    # Then the queue whose policy lets the topic send has it, and the other does not: its subscription's
    # dead-letter queue does
    assert _received(cloud, outputs["PermittedQueueUrl"], wait=5) == ["from the topic"]
    assert _received(cloud, outputs["UnpermittedQueueUrl"], wait=1) == []
    assert _received(cloud, outputs["UndeliverableQueueUrl"], wait=5) == ["from the topic"]
    denial = _latest_denial(cloud, "sqs:SendMessage")
    assert denial["principal"] == "sns.amazonaws.com" and denial["resource"].endswith(":" + outputs[
        "UnpermittedQueueUrl"].rsplit("/", 1)[-1])  # fmt: skip
    assert "because no resource-based policy allows the sqs:SendMessage action" in denial["message"]


def test_eventbridge_delivers_only_to_a_queue_whose_policy_lets_the_rule_send(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """EventBridge sends as events.amazonaws.com: the queue policy must allow it for the rule
    (EventBridge user guide, "Using resource-based policies for Amazon EventBridge": Amazon SQS)."""
    # When an event both rules match is put
    entry = {"Source": "permissions.probe", "DetailType": "probe", "Detail": json.dumps({"n": 1})}
    assert cloud.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0
    # Then the L2 target's queue has it, and the queue the L1 rule names without a policy does not
    assert [
        json.loads(body)["detail"] for body in _received(cloud, outputs["PermittedQueueUrl"], wait=5)
    ] == [{"n": 1}]
    assert _received(cloud, outputs["UnpermittedQueueUrl"], wait=1) == []
    assert _latest_denial(cloud, "sqs:SendMessage")["principal"] == "events.amazonaws.com"


def test_a_state_machine_task_calls_as_the_state_machines_role(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """Step Functions calls a task's service with the state machine's role (Step Functions developer
    guide, "How Step Functions works with IAM"): a write its role may not make fails the task."""
    sfn = cloud.client("stepfunctions")

    def run(table: str) -> dict[str, Any]:
        arn = sfn.start_execution(stateMachineArn=outputs["WriterArn"], input=json.dumps({"table": table}))
        for _ in range(100):
            described = sfn.describe_execution(executionArn=arn["executionArn"])
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.1)
        raise AssertionError("the execution did not end")

    assert run(outputs["GrantedTable"])["status"] == "SUCCEEDED"
    failed = run(outputs["OtherTable"])
    assert failed["status"] == "FAILED" and "AccessDenied" in failed.get("cause", ""), failed
    role = _latest_denial(cloud, "dynamodb:PutItem")["role"]
    assert role.split("/")[-1].startswith("PermissionsStack-WriterRole")


def test_the_api_invokes_a_function_only_with_its_permission(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """API Gateway invokes as apigateway.amazonaws.com for the method's ARN: without a Lambda permission
    for it the method answers 500 (API Gateway's "Invalid permissions on Lambda function")."""
    api = f"{cloud.api.url}/restapis/{outputs['RestApiId']}/prod/_user_request_"

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(f"{api}/{path}", timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert status("permitted") == 200
    assert status("unpermitted") == 500
    denial = _latest_denial(cloud, "lambda:InvokeFunction")
    assert denial["principal"] == "apigateway.amazonaws.com"


def test_a_mapping_reads_its_queue_as_the_functions_role(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """Lambda polls a queue with the function's execution role (Lambda developer guide, "Using Lambda
    with Amazon SQS": the role needs sqs:ReceiveMessage): a role without it reads nothing."""
    sqs = cloud.client("sqs")
    before = cloud.status()["iam"]["denied_by_action"].get("sqs:ReceiveMessage", 0)
    sqs.send_message(QueueUrl=outputs["UnreadQueueUrl"], MessageBody="never read")
    # The poller's next read (it backs off while refused, 10 s at most) is refused again
    for _ in range(200):
        if cloud.status()["iam"]["denied_by_action"].get("sqs:ReceiveMessage", 0) > before:
            break
        time.sleep(0.1)
    assert _latest_denial(cloud, "sqs:ReceiveMessage")["role"] == outputs["ProbeRoleArn"]
    attributes = sqs.get_queue_attributes(QueueUrl=outputs["UnreadQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    # (cleared: a consumed queue holding a message keeps the shared local cloud from ever being idle)
    sqs.purge_queue(QueueUrl=outputs["UnreadQueueUrl"])
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_a_stream_mapping_reads_its_stream_as_the_functions_role(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    """Lambda reads a DynamoDB stream with the function's execution role, which needs
    dynamodb:GetRecords on the stream (Lambda developer guide, "Using Lambda with DynamoDB")."""
    before = cloud.status()["iam"]["denied_by_action"].get("dynamodb:GetRecords", 0)
    cloud.client("dynamodb").put_item(TableName=outputs["StreamedTable"], Item={"pk": {"S": "streamed"}})
    for _ in range(200):
        if cloud.status()["iam"]["denied_by_action"].get("dynamodb:GetRecords", 0) > before:
            break
        time.sleep(0.1)
    denial = _latest_denial(cloud, "dynamodb:GetRecords")
    assert denial["role"] == outputs["ProbeRoleArn"] and "/stream/" in denial["resource"]


def test_report_mode_lets_a_denied_call_through_and_records_it(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """Last in this module: a poller's long poll that starts while the mode is report stays allowed for
    its 20 seconds, as a request authorised when it arrived does."""
    saved, cloud.permissions.mode = cloud.permissions.mode, "report"
    try:
        assert probe(cloud, outputs, {"table": outputs["OtherTable"]}) == {"ok": True}
    finally:
        cloud.permissions.mode = saved
    assert _latest_denial(cloud, "dynamodb:PutItem")["enforced"] is False
