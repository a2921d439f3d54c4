"""Step Functions service integrations on the local cloud, with their documented input and output
shapes: the optimised SQS, SNS, DynamoDB and EventBridge integrations, an ``aws-sdk:*`` call, and
``.waitForTaskToken`` (nested executions are in ``test_conformance_workflows.py``)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from typing import Any

import pytest

from demo.scenarios import finished_execution
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/integrations"


@pytest.fixture(scope="module")
def resources(cloud: LocalCloud) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    queue = cloud.client("sqs").create_queue(QueueName=f"integrations-{run}")["QueueUrl"]
    topic = cloud.client("sns").create_topic(Name=f"integrations-{run}")["TopicArn"]
    table = f"integrations-{run}"
    cloud.client("dynamodb").create_table(
        TableName=table, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    # The state machines' role, which their tasks call as: it may do what the tests' tasks do, there only
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:integrations-{run}"
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    grants = [
        (["sqs:SendMessage"], queue_arn), (["sns:Publish"], topic),
        (["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DescribeTable"], table_arn),
        (["events:PutEvents"], f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
    ]  # fmt: skip
    iam = cloud.client("iam")
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName="integrations", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(
        RoleName="integrations", PolicyName=f"tasks-{run}",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": resource} for actions, resource in grants
        ]}),
    )  # fmt: skip
    return {"run": run, "queue": queue, "topic": topic, "table": table}


def _run(cloud: LocalCloud, name: str, states: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=name, roleArn=ROLE, definition=json.dumps({"StartAt": next(iter(states)), "States": states})
    )["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))
    return finished_execution(cloud, started["executionArn"])


def test_the_optimised_integrations_call_their_service_and_return_its_answer(
    cloud: LocalCloud, resources: dict[str, str]
) -> None:
    states = {
        "Send": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "ResultPath": "$.sent",
                 "Parameters": {"QueueUrl": resources["queue"], "MessageBody.$": "$.msg"}, "Next": "Publish"},
        "Publish": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "ResultPath": "$.published",
                    "Parameters": {"TopicArn": resources["topic"], "Message.$": "$.msg"}, "Next": "Put"},
        "Put": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "ResultPath": "$.put",
                "Parameters": {"TableName": resources["table"], "Item": {"pk": {"S.$": "$.msg"}}}, "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem", "ResultPath": "$.got",
                "Parameters": {"TableName": resources["table"], "Key": {"pk": {"S.$": "$.msg"}}}, "Next": "Events"},
        "Events": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents", "ResultPath": "$.events",
                   "Parameters": {"Entries": [{"Source": "integrations", "DetailType": "t", "Detail": {"m.$": "$.msg"}}]},
                   "Next": "Sdk"},
        "Sdk": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:describeTable", "ResultPath": "$.table",
                "Parameters": {"TableName": resources["table"]}, "End": True},
    }  # fmt: skip
    execution = _run(cloud, f"integrations-{resources['run']}", states, {"msg": "hello"})
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert set(output["sent"]) >= {"MessageId", "MD5OfMessageBody"}
    assert "MessageId" in output["published"]
    assert output["got"]["Item"] == {"pk": {"S": "hello"}}
    assert output["events"]["FailedEntryCount"] == 0 and len(output["events"]["Entries"]) == 1
    assert output["table"]["Table"]["TableName"] == resources["table"]
    assert output["table"]["Table"]["CreationDateTime"].endswith("Z")  # the API's timestamps, as text
    message = cloud.client("sqs").receive_message(QueueUrl=resources["queue"])["Messages"][0]
    assert message["Body"] == "hello"
    cloud.client("sqs").delete_message(QueueUrl=resources["queue"], ReceiptHandle=message["ReceiptHandle"])


def test_wait_for_task_token_pauses_until_the_token_is_answered(
    cloud: LocalCloud, resources: dict[str, str]
) -> None:
    """``.waitForTaskToken``: the task sends the token and waits; SendTaskSuccess's output is its result."""
    sqs, sfn = cloud.client("sqs"), cloud.client("stepfunctions")

    def answer() -> None:
        while True:
            for message in sqs.receive_message(QueueUrl=resources["queue"], WaitTimeSeconds=5).get(
                "Messages", []
            ):
                token = json.loads(message["Body"])["token"]
                sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
                return

    worker = threading.Thread(target=answer, daemon=True)
    worker.start()
    states = {
        "Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": resources["queue"], "MessageBody": {"token.$": "$$.Task.Token"}},
                "ResultPath": "$.answer", "End": True},
    }  # fmt: skip
    execution = _run(cloud, f"token-{resources['run']}", states, {"order": "o-1"})
    worker.join(timeout=10)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"order": "o-1", "answer": {"approved": True}}
