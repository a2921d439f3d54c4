"""Change sets as CloudFormation keeps them: per stack, so one stack's deploy never runs another's."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.cloudformation import patches

patches.apply()

pytestmark = pytest.mark.unit

# The name the CDK CLI gives every change set it creates.
CDK_CHANGE_SET = "cdk-deploy-change-set"


def queue_template(name: str) -> str:
    return json.dumps(
        {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}}}
    )


def create_change_set(cfn: Any, stack: str) -> None:
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=CDK_CHANGE_SET,
        ChangeSetType="CREATE",
        TemplateBody=queue_template(stack),
    )


def test_a_change_set_named_like_another_stacks_is_the_one_of_its_own_stack(aws: None) -> None:
    cfn = boto3.client("cloudformation")
    # Given a stack whose deploy stopped after its change set was made (it stays in review)
    create_change_set(cfn, "Billing")
    # When the next stack is deployed as the CDK CLI does, with a change set of the same name
    create_change_set(cfn, "Orders")
    described = cfn.describe_change_set(ChangeSetName=CDK_CHANGE_SET, StackName="Orders")
    cfn.execute_change_set(ChangeSetName=CDK_CHANGE_SET, StackName="Orders")
    # Then it described and executed its own change set: its queue exists, the other stack is untouched
    assert described["StackName"] == "Orders"
    assert cfn.describe_stacks(StackName="Orders")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert cfn.describe_stacks(StackName="Billing")["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"
    assert boto3.client("sqs").get_queue_url(QueueName="Orders")["QueueUrl"]
    # And deleting the other stack's change set leaves nothing of it to describe
    cfn.delete_change_set(ChangeSetName=CDK_CHANGE_SET, StackName="Billing")
    with pytest.raises(ClientError, match="ChangeSetNotFound"):
        cfn.describe_change_set(ChangeSetName=CDK_CHANGE_SET, StackName="Billing")


def test_an_output_reading_a_resource_the_local_cloud_skipped_is_left_out(aws: None) -> None:
    cfn = boto3.client("cloudformation")
    # Given a stack with a resource of a type the local cloud cannot create, whose attribute is an output
    template = {
        "Resources": {
            "Pipe": {"Type": "AWS::Unknown::Pipe", "Properties": {"Name": "pipe"}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "kept"}},
        },
        "Outputs": {
            "PipeArn": {"Value": {"Fn::GetAtt": ["Pipe", "Arn"]}},
            "QueueUrl": {"Value": {"Ref": "Queue"}},
        },
    }
    cfn.create_stack(StackName="Skipping", TemplateBody=json.dumps(template))
    # Then describing it (alone or with every stack) answers, with the outputs that can be read
    (stack,) = cfn.describe_stacks(StackName="Skipping")["Stacks"]
    assert [output["OutputKey"] for output in stack["Outputs"]] == ["QueueUrl"]
    assert [s["StackName"] for s in cfn.describe_stacks()["Stacks"]] == ["Skipping"]


def test_a_generated_name_is_cut_to_what_its_service_takes_keeping_its_random_tail(aws: None) -> None:
    cfn = boto3.client("cloudformation")
    # Given a long stack name and a state machine and a function without names of their own
    stack = "OrdersProcessingPipelineWithAVeryDescriptiveNameStack"
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    template = {
        "Resources": {
            "FulfilmentWorkflowStateMachine1A2B3C4D": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": definition,
                    "RoleArn": "arn:aws:iam::123456789012:role/sfn",
                },
            },
            "NotifyCustomersQueue5E6F7A8B": {"Type": "AWS::SQS::Queue"},
        }
    }
    # When it is created
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    # Then each name fits its service (Step Functions 80, SQS 80), and starts as CloudFormation's do
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    (machine,) = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    (queue_url,) = boto3.client("sqs").list_queues()["QueueUrls"]
    for name in (machine["name"], queue_url.rsplit("/", 1)[1]):
        assert len(name) <= 80 and name.startswith(f"{stack}-"), name


def test_a_resource_that_fails_fails_its_stack_with_the_reason_and_the_call_succeeds(aws: None) -> None:
    cfn = boto3.client("cloudformation")
    # Given a change set whose state machine the service refuses (a name over its 80 characters)
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "m" * 81,
                    "DefinitionString": json.dumps(
                        {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
                    ),
                    "RoleArn": "arn:aws:iam::123456789012:role/sfn",
                },
            }
        }
    }
    cfn.create_change_set(
        StackName="Refused",
        ChangeSetName=CDK_CHANGE_SET,
        ChangeSetType="CREATE",
        TemplateBody=json.dumps(template),
    )
    # When it is executed, the call succeeds as CloudFormation's does
    cfn.execute_change_set(ChangeSetName=CDK_CHANGE_SET, StackName="Refused")
    # Then the stack rolled back, and its events say why in CloudFormation's words
    (stack,) = cfn.describe_stacks(StackName="Refused")["Stacks"]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [
        e.get("ResourceStatusReason", "")
        for e in cfn.describe_stack_events(StackName="Refused")["StackEvents"]
    ]
    assert any("name" in reason.lower() and "80" in reason for reason in reasons), reasons


def test_a_resource_naming_one_the_local_cloud_cannot_create_is_still_created(aws: None) -> None:
    """An EventBridge rule whose target is a Kinesis Firehose stream (a type moto lacks): the stream is
    not honoured (listed), the rule is created; moto failed the whole stack on the GetAtt."""
    cfn = boto3.client("cloudformation")
    template = {
        "Resources": {
            "Firehose": {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": {}},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": "to-firehose", "EventPattern": {"source": ["app"]},
                    "Targets": [{"Id": "f", "Arn": {"Fn::GetAtt": ["Firehose", "Arn"]}}],
                },
            },
        },
    }  # fmt: skip
    cfn.create_stack(StackName="Standing", TemplateBody=json.dumps(template))
    assert cfn.describe_stacks(StackName="Standing")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    (target,) = boto3.client("events").list_targets_by_rule(Rule="to-firehose")["Targets"]
    assert target["Arn"].startswith("arn:aws:kinesisfirehose:us-east-1:")


def test_a_method_with_a_mock_integration_and_no_authorization_type_is_created(aws: None) -> None:
    """CDK's ``add_method("ANY")``: a MOCK integration without IntegrationHttpMethod or Uri."""
    cfn = boto3.client("cloudformation")
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "mocked"}},
            "Any": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "RestApiId": {"Ref": "Api"}, "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "HttpMethod": "ANY", "Integration": {"Type": "MOCK"},
                },
            },
        },
    }  # fmt: skip
    cfn.create_stack(StackName="Mocked", TemplateBody=json.dumps(template))
    assert cfn.describe_stacks(StackName="Mocked")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
