"""The CloudFormation types localcloud registers with moto create, update and delete real moto resources."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import localcloud.cloudformation.resource_types as cfn_types
from localcloud.cloudformation import patches as cloudformation_patches

cfn_types.register()

pytestmark = pytest.mark.unit

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "typestack"


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def template(resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    if outputs:
        body["Outputs"] = {key: {"Value": value} for key, value in outputs.items()}
    return json.dumps(body)


def deploy(resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, str]:
    """Create the stack and return its outputs (the resolved Refs/GetAtts of our types)."""
    cfn = client("cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=template(resources, outputs))
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def redeploy(resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, str]:
    cfn = client("cloudformation")
    cfn.update_stack(StackName=STACK, TemplateBody=template(resources, outputs))
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def queue_arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


QUEUES = {
    "Work": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "work"}},
    "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dlq"}},
}
TOPIC = {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}}}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": "*",
        }
    ],
}


def subscription(filter_policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "Protocol": "sqs",
            "TopicArn": {"Ref": "Topic"},
            "Endpoint": queue_arn("Work"),
            "RawMessageDelivery": "true",
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": filter_policy,
            "RedrivePolicy": {"deadLetterTargetArn": queue_arn("Dlq")},
        },
    }


SCHEDULER = {
    "Group": {"Type": "AWS::Scheduler::ScheduleGroup", "Properties": {"Name": "jobs"}},
    "Role": {
        "Type": "AWS::IAM::Role",
        "Properties": {"RoleName": "scheduler", "AssumeRolePolicyDocument": POLICY},
    },
}


def schedule(expression: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "Name": "nightly",
            "GroupName": {"Ref": "Group"},
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": "Europe/Paris",
            "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
            "State": "ENABLED",
            "Description": "nightly sweep",
            "Target": {
                "Arn": queue_arn("Work"),
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                "Input": '{"job": "sweep"}',
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600},
                "DeadLetterConfig": {"Arn": queue_arn("Dlq")},
            },
        },
    }


def alarm(threshold: int) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Dlq", "QueueName"]}}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "Topic"}],
        },
    }


def subscription_arn() -> str:
    return client("sns").list_subscriptions_by_topic(TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:events")[
        "Subscriptions"
    ][0]["SubscriptionArn"]


def test_registered_types_are_listed_as_supported() -> None:
    """moto's type map (what the CLI checks a stack against) includes ours next to moto's own."""
    supported = cfn_types.supported_types()
    assert cfn_types.REGISTERED_TYPES.issubset(supported)
    assert {"AWS::SQS::Queue", "AWS::Lambda::Function"} <= supported
    assert "AWS::SERVICE::RESOURCE" not in supported
    assert "AWS::CDK::Metadata" not in supported
    assert cfn_types.is_supported("Custom::Seed")


def test_subscription_is_created_with_its_attributes(aws: None) -> None:
    """AWS::SNS::Subscription subscribes the endpoint with RawMessageDelivery, FilterPolicy and RedrivePolicy."""
    outputs = deploy(
        {**QUEUES, **TOPIC, "Sub": subscription({"kind": ["order"]})},
        {"Sub": {"Ref": "Sub"}, "SubArn": {"Fn::GetAtt": ["Sub", "Arn"]}},
    )

    attributes = client("sns").get_subscription_attributes(SubscriptionArn=outputs["Sub"])["Attributes"]
    assert outputs["Sub"] == outputs["SubArn"] == subscription_arn()
    assert attributes["Endpoint"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"
    assert attributes["RawMessageDelivery"] == "true"
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["order"]}
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"
    }


def test_subscription_filters_and_delivers_raw(aws: None) -> None:
    """Messages reach the queue through the CloudFormation subscription: filtered and unwrapped (raw)."""
    deploy({**QUEUES, **TOPIC, "Sub": subscription({"kind": ["order"]})})
    sns, sqs = client("sns"), client("sqs")
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:events"
    for kind in ("order", "refund"):
        sns.publish(
            TopicArn=topic_arn,
            Message=kind,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
        )

    url = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    bodies = [
        m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    ]
    assert bodies == ["order"]


def test_queue_and_topic_policies_are_set(aws: None) -> None:
    """AWS::SQS::QueuePolicy and AWS::SNS::TopicPolicy set the Policy attribute of every listed queue/topic."""
    topic_policy = {**POLICY, "Statement": [{**POLICY["Statement"][0], "Action": "sns:Publish"}]}
    deploy(
        {
            **QUEUES,
            **TOPIC,
            "QueuePolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {"Queues": [{"Ref": "Work"}, {"Ref": "Dlq"}], "PolicyDocument": POLICY},
            },
            "TopicPolicy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": topic_policy},
            },
        }
    )

    sqs = client("sqs")
    for name in ("work", "dlq"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
        assert json.loads(policy) == POLICY
    attributes = client("sns").get_topic_attributes(TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:events")
    assert json.loads(attributes["Attributes"]["Policy"]) == topic_policy


def test_schedule_is_created_in_its_group(aws: None) -> None:
    """AWS::Scheduler::ScheduleGroup and ::Schedule create the group and the schedule with its target."""
    outputs = deploy(
        {**QUEUES, **SCHEDULER, "Nightly": schedule("cron(0 2 * * ? *)")},
        {"Arn": {"Fn::GetAtt": ["Nightly", "Arn"]}, "GroupArn": {"Fn::GetAtt": ["Group", "Arn"]}},
    )

    scheduler = client("scheduler")
    got = scheduler.get_schedule(GroupName="jobs", Name="nightly")
    assert outputs["Arn"] == got["Arn"] == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/jobs/nightly"
    assert outputs["GroupArn"] == scheduler.get_schedule_group(Name="jobs")["Arn"]
    assert got["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert got["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert got["Description"] == "nightly sweep"
    assert got["Target"]["Arn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"
    assert got["Target"]["Input"] == '{"job": "sweep"}'
    assert got["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600}
    assert got["Target"]["DeadLetterConfig"] == {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"}


def test_alarms_are_created_with_generated_names(aws: None) -> None:
    """AWS::CloudWatch::Alarm without AlarmName gets <stack>-<logical id>-<suffix>; metric math is kept."""
    math_alarm = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "error-rate",
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "Threshold": 0.05,
            "Metrics": [
                {"Id": "rate", "Expression": "errors / invocations", "ReturnData": True},
                *[
                    {
                        "Id": metric_id,
                        "ReturnData": False,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/Lambda",
                                "MetricName": metric_name,
                                "Dimensions": [{"Name": "FunctionName", "Value": "worker"}],
                            },
                            "Period": 300,
                            "Stat": "Sum",
                        },
                    }
                    for metric_id, metric_name in (("errors", "Errors"), ("invocations", "Invocations"))
                ],
            ],
        },
    }
    outputs = deploy(
        {**QUEUES, **TOPIC, "DlqDepth": alarm(1), "ErrorRate": math_alarm},
        {"Name": {"Ref": "DlqDepth"}, "Arn": {"Fn::GetAtt": ["DlqDepth", "Arn"]}},
    )

    cloudwatch = client("cloudwatch")
    depth = cloudwatch.describe_alarms(AlarmNames=[outputs["Name"]])["MetricAlarms"][0]
    assert outputs["Name"].startswith(f"{STACK}-DlqDepth-")
    assert outputs["Arn"] == depth["AlarmArn"]
    assert depth["Dimensions"] == [{"Name": "QueueName", "Value": "dlq"}]
    assert depth["AlarmActions"] == [f"arn:aws:sns:{REGION}:{ACCOUNT}:events"]
    assert depth["TreatMissingData"] == "notBreaching"
    assert (depth["Threshold"], depth["Period"], depth["Statistic"]) == (1.0, 60, "Maximum")
    rate = cloudwatch.describe_alarms(AlarmNames=["error-rate"])["MetricAlarms"][0]
    assert rate["DatapointsToAlarm"] == 2
    assert [m["Id"] for m in rate["Metrics"]] == ["rate", "errors", "invocations"]
    assert rate["Metrics"][0]["Expression"] == "errors / invocations"
    assert rate["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "worker"}
    ]


LAMBDA = {
    "FnRole": {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": POLICY},
    },
    "Fn": {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": "worker",
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
        },
    },
}


def test_event_invoke_config_is_put_on_the_function(aws: None) -> None:
    """AWS::Lambda::EventInvokeConfig sets async retries, event age and the on-failure destination."""
    deploy(
        {
            **QUEUES,
            **LAMBDA,
            "Async": {
                "Type": "AWS::Lambda::EventInvokeConfig",
                "Properties": {
                    "FunctionName": {"Ref": "Fn"},
                    "Qualifier": "$LATEST",
                    "MaximumRetryAttempts": 1,
                    "MaximumEventAgeInSeconds": 3600,
                    "DestinationConfig": {"OnFailure": {"Destination": queue_arn("Dlq")}},
                },
            },
        }
    )

    config = client("lambda").get_function_event_invoke_config(FunctionName="worker")
    assert config["MaximumRetryAttempts"] == 1
    assert config["MaximumEventAgeInSeconds"] == 3600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"


def rest_api(deployment_stage: str | None = None) -> dict[str, Any]:
    """What a CDK LambdaRestApi with an API key synthesises, with an HTTP proxy instead of the Lambda."""
    deployment: dict[str, Any] = {"RestApiId": {"Ref": "Api"}, "Description": "v1"}
    if deployment_stage:
        deployment["StageName"] = deployment_stage
    return {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "orders-api"}},
        "AnyMethod": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResourceId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                "HttpMethod": "ANY",
                "AuthorizationType": "NONE",
                "ApiKeyRequired": True,
                "Integration": {
                    "Type": "HTTP_PROXY",
                    "IntegrationHttpMethod": "ANY",
                    "Uri": "https://example.com",
                },
            },
        },
        "Deployment": {
            "Type": "AWS::ApiGateway::Deployment",
            "DependsOn": ["AnyMethod"],
            "Properties": deployment,
        },
        "CloudWatchRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {"RoleName": "apigw-logs", "AssumeRolePolicyDocument": POLICY},
        },
        "Account": {
            "Type": "AWS::ApiGateway::Account",
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["CloudWatchRole", "Arn"]}},
        },
        "Stage": {
            "Type": "AWS::ApiGateway::Stage",
            "DependsOn": ["Account"],
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "DeploymentId": {"Ref": "Deployment"},
                "StageName": "prod",
                "TracingEnabled": True,
                "Variables": {"table": "orders"},
                "MethodSettings": [
                    {
                        "HttpMethod": "*",
                        "ResourcePath": "/*",
                        "LoggingLevel": "INFO",
                        "MetricsEnabled": True,
                        "ThrottlingBurstLimit": 50,
                        "ThrottlingRateLimit": 100,
                    }
                ],
            },
        },
        "Key": {
            "Type": "AWS::ApiGateway::ApiKey",
            "DependsOn": ["Stage"],
            "Properties": {
                "Enabled": True,
                "StageKeys": [{"RestApiId": {"Ref": "Api"}, "StageName": {"Ref": "Stage"}}],
            },
        },
        "Plan": {
            "Type": "AWS::ApiGateway::UsagePlan",
            "Properties": {
                "UsagePlanName": "partners",
                "ApiStages": [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Stage"}}],
                "Throttle": {"BurstLimit": 10, "RateLimit": 5},
                "Quota": {"Limit": 1000, "Period": "DAY"},
            },
        },
        "PlanKey": {
            "Type": "AWS::ApiGateway::UsagePlanKey",
            "Properties": {"KeyId": {"Ref": "Key"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "Plan"}},
        },
    }


API_OUTPUTS = {
    "Api": {"Ref": "Api"},
    "Key": {"Ref": "Key"},
    "Plan": {"Ref": "Plan"},
    "Stage": {"Ref": "Stage"},
}


def test_rest_api_stage_key_and_usage_plan_are_created(aws: None) -> None:
    """A LambdaRestApi-with-API-key template yields the stage, key, usage plan, plan key and logs role."""
    outputs = deploy(rest_api(), API_OUTPUTS)

    apigateway = client("apigateway")
    stage = apigateway.get_stage(restApiId=outputs["Api"], stageName="prod")
    assert outputs["Stage"] == "prod"
    assert stage["deploymentId"] == apigateway.get_deployments(restApiId=outputs["Api"])["items"][0]["id"]
    assert stage["tracingEnabled"] is True
    assert stage["variables"] == {"table": "orders"}
    settings = stage["methodSettings"]["*/*"]
    assert (settings["loggingLevel"], settings["metricsEnabled"]) == ("INFO", True)
    assert (settings["throttlingBurstLimit"], settings["throttlingRateLimit"]) == (50, 100.0)

    key = apigateway.get_api_key(apiKey=outputs["Key"], includeValue=True)
    assert key["enabled"] is True
    assert key["name"].startswith(f"{STACK}-Key-")
    assert key["stageKeys"] == [f"{outputs['Api']}/prod"]

    plan = apigateway.get_usage_plan(usagePlanId=outputs["Plan"])
    assert plan["name"] == "partners"
    assert plan["apiStages"] == [{"apiId": outputs["Api"], "stage": "prod"}]
    assert plan["throttle"] == {"burstLimit": 10, "rateLimit": 5.0}
    assert plan["quota"] == {"limit": 1000, "period": "DAY"}
    plan_keys = apigateway.get_usage_plan_keys(usagePlanId=outputs["Plan"])["items"]
    assert [(k["id"], k["type"], k["value"]) for k in plan_keys] == [
        (outputs["Key"], "API_KEY", key["value"])
    ]

    assert apigateway.get_account()["cloudwatchRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/apigw-logs"


def test_stage_adopts_the_one_its_deployment_made(aws: None) -> None:
    """A Deployment with StageName already made the stage: the Stage resource configures it, no conflict."""
    outputs = deploy(rest_api(deployment_stage="prod"), API_OUTPUTS)

    stage = client("apigateway").get_stage(restApiId=outputs["Api"], stageName="prod")
    assert stage["variables"] == {"table": "orders"}


def full_stack(filter_policy: dict[str, Any], expression: str, threshold: int) -> dict[str, Any]:
    return {
        **QUEUES,
        **TOPIC,
        **SCHEDULER,
        **LAMBDA,
        **rest_api(),
        "Sub": subscription(filter_policy),
        "Nightly": schedule(expression),
        "DlqDepth": alarm(threshold),
        "QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {"Queues": [{"Ref": "Work"}], "PolicyDocument": POLICY},
        },
        "Async": {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {"FunctionName": {"Ref": "Fn"}, "Qualifier": "$LATEST", "MaximumRetryAttempts": 0},
        },
    }


def test_update_applies_changed_properties(aws: None) -> None:
    """update_stack changes FilterPolicy, the schedule expression, the alarm and the stage in place."""
    deploy(full_stack({"kind": ["order"]}, "rate(1 hour)", 1))
    arn_before = subscription_arn()
    updated = full_stack({"kind": ["refund"]}, "rate(5 minutes)", 5)
    updated["Stage"]["Properties"]["Variables"] = {"table": "orders-v2"}
    updated["Async"]["Properties"]["MaximumRetryAttempts"] = 2

    outputs = redeploy(updated, {**API_OUTPUTS, "Alarm": {"Ref": "DlqDepth"}})

    attributes = client("sns").get_subscription_attributes(SubscriptionArn=arn_before)["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["refund"]}
    assert (
        client("scheduler").get_schedule(GroupName="jobs", Name="nightly")["ScheduleExpression"]
        == "rate(5 minutes)"
    )
    alarms = client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{STACK}-DlqDepth-")["MetricAlarms"]
    assert [(a["AlarmName"], a["Threshold"]) for a in alarms] == [(outputs["Alarm"], 5.0)]
    stage = client("apigateway").get_stage(restApiId=outputs["Api"], stageName="prod")
    assert stage["variables"] == {"table": "orders-v2"}
    assert (
        client("lambda").get_function_event_invoke_config(FunctionName="worker")["MaximumRetryAttempts"] == 2
    )


def test_delete_stack_deletes_the_resources(aws: None) -> None:
    """delete_stack removes what our types created: subscription, policy, schedule, alarm, API key, plan."""
    outputs = deploy(
        full_stack({"kind": ["order"]}, "rate(1 hour)", 1), {**API_OUTPUTS, "Alarm": {"Ref": "DlqDepth"}}
    )
    arn = subscription_arn()

    client("cloudformation").delete_stack(StackName=STACK)

    sns, apigateway = client("sns"), client("apigateway")
    assert arn not in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    assert client("scheduler").list_schedule_groups()["ScheduleGroups"][0]["Name"] == "default"
    assert client("scheduler").list_schedules()["Schedules"] == []
    assert client("cloudwatch").describe_alarms(AlarmNames=[outputs["Alarm"]])["MetricAlarms"] == []
    assert apigateway.get_api_keys()["items"] == []
    assert apigateway.get_usage_plans()["items"] == []


def test_removing_resources_from_the_template_deletes_them(aws: None) -> None:
    """update_stack without the subscription, policies and invoke config deletes them, keeping their targets."""
    kept = {**QUEUES, **TOPIC, **LAMBDA}
    stack = full_stack({"kind": ["order"]}, "rate(1 hour)", 1)
    topic_policy = {
        "Type": "AWS::SNS::TopicPolicy",
        "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": POLICY},
    }
    deploy(
        {**kept, **{key: stack[key] for key in ("Sub", "QueuePolicy", "Async")}, "TopicPolicy": topic_policy}
    )

    redeploy(kept)

    sns, sqs = client("sns"), client("sqs")
    assert sns.list_subscriptions()["Subscriptions"] == []
    topic_policy_now = sns.get_topic_attributes(TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:events")[
        "Attributes"
    ]["Policy"]
    assert json.loads(topic_policy_now)["Id"] == "__default_policy_ID"
    url = sqs.get_queue_url(QueueName="work")["QueueUrl"]
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client("lambda").get_function_event_invoke_config(FunctionName="worker")


def test_a_secret_is_created_with_a_generated_value_kept_across_updates_and_deleted(aws: None) -> None:
    # Given a secret whose value CloudFormation generates into a JSON template (what CDK's Secret declares)
    secret = {
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "Description": "signing keys",
                "GenerateSecretString": {
                    "SecretStringTemplate": '{"user": "app"}', "GenerateStringKey": "password",
                    "PasswordLength": 40, "ExcludePunctuation": True,
                },
            },
        }
    }  # fmt: skip
    # When the stack is created
    outputs = deploy(secret, {"Arn": {"Ref": "Secret"}})
    # Then Ref is the secret's ARN and the value is the template with a generated password
    secrets = client("secretsmanager")
    value = json.loads(secrets.get_secret_value(SecretId=outputs["Arn"])["SecretString"])
    assert outputs["Arn"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:")
    assert value["user"] == "app" and len(value["password"]) == 40 and value["password"].isalnum()
    # When someone rotates it and the stack is updated (description only)
    secrets.put_secret_value(SecretId=outputs["Arn"], SecretString="rotated")
    secret["Secret"]["Properties"]["Description"] = "signing keys, v2"
    redeploy(secret, {"Arn": {"Ref": "Secret"}})
    # Then the rotated value is kept, as CloudFormation keeps it
    assert secrets.get_secret_value(SecretId=outputs["Arn"])["SecretString"] == "rotated"
    # When the stack is deleted / Then the secret is gone
    client("cloudformation").delete_stack(StackName=STACK)
    with pytest.raises(ClientError):
        secrets.get_secret_value(SecretId=outputs["Arn"])


def test_a_log_groups_arn_covers_its_streams_as_cloudformation_gives_it(aws: None) -> None:
    """CloudFormation's AWS::Logs::LogGroup Arn attribute ends in ":*" (CDK's log grants name it)."""
    cloudformation_patches.apply()  # what a local cloud installs (once per process)
    outputs = deploy(
        {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "worker-logs"}}},
        {"LogsArn": {"Fn::GetAtt": ["Logs", "Arn"]}},
    )
    assert outputs["LogsArn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:worker-logs:*"
