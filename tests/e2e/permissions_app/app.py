"""PermissionsStack: a function granted writes to one table and nothing else, and services acting for
the stack with and without the grants they need (a topic and a rule sending to a queue whose policy
lets them and to one whose policy does not, a state machine writing to a table its role may and may
not write to, an API invoking a function with and without its permission, mappings whose function
may not read their queue or stream). Deployed with the CDK CLI
by ``tests/e2e/test_permissions.py``; runnable as a script from the repo root."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PROBE = Path(__file__).resolve().parent / "probe"


class PermissionsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        def table(name: str) -> dynamodb.Table:
            return dynamodb.Table(
                self, name, partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
            )  # fmt: skip

        granted, other, queue = table("Granted"), table("Other"), sqs.Queue(self, "Ungranted")
        probe = lambda_.Function(
            self, "Probe", runtime=lambda_.Runtime.PYTHON_3_11, handler="probe.handler",
            code=lambda_.Code.from_asset(str(PROBE), exclude=["__pycache__"]), timeout=Duration.seconds(10),
        )  # fmt: skip
        granted.grant_write_data(probe)

        # SNS and EventBridge deliver only where the queue policy lets them: the L2 subscription and
        # target add that policy to "Permitted"; the L1 ones add nothing to "Unpermitted".
        permitted, unpermitted = sqs.Queue(self, "Permitted"), sqs.Queue(self, "Unpermitted")
        topic = sns.Topic(self, "Topic")
        topic.add_subscription(subscriptions.SqsSubscription(permitted, raw_message_delivery=True))
        # What SNS cannot deliver goes to the subscription's dead-letter queue, whose policy lets the topic send.
        undeliverable = sqs.Queue(self, "Undeliverable")
        undeliverable.add_to_resource_policy(iam.PolicyStatement(
            actions=["sqs:SendMessage"], resources=[undeliverable.queue_arn],
            principals=[iam.ServicePrincipal("sns.amazonaws.com")],
            conditions={"ArnEquals": {"aws:SourceArn": topic.topic_arn}},
        ))  # fmt: skip
        sns.CfnSubscription(
            self, "UnpermittedSubscription", topic_arn=topic.topic_arn, protocol="sqs",
            endpoint=unpermitted.queue_arn, raw_message_delivery=True,
            redrive_policy={"deadLetterTargetArn": undeliverable.queue_arn},
        )  # fmt: skip
        rule = events.Rule(self, "Rule", event_pattern=events.EventPattern(source=["permissions.probe"]))
        rule.add_target(targets.SqsQueue(permitted))
        unpermitted_rule = events.CfnRule(
            self, "UnpermittedRule", event_pattern={"source": ["permissions.probe"]},
            targets=[events.CfnRule.TargetProperty(id="unpermitted", arn=unpermitted.queue_arn)],
        )  # fmt: skip

        # A state machine whose role may write to one table only: its task names the table per execution.
        writer = sfn.StateMachine(
            self, "Writer", definition_body=sfn.DefinitionBody.from_chainable(sfn.CustomState(
                self, "PutItem", state_json={
                    "Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True,
                    "Parameters": {"TableName.$": "$.table", "Item": {"pk": {"S": "from-the-state-machine"}}},
                },
            )),
        )  # fmt: skip
        granted.grant_write_data(writer)

        # Lambda reads a mapping's queue with the function's role, which nothing here grants that queue.
        unread = sqs.Queue(self, "Unread")
        lambda_.EventSourceMapping(self, "UngrantedMapping", target=probe, event_source_arn=unread.queue_arn)
        streamed = dynamodb.Table(
            self, "Streamed", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
            stream=dynamodb.StreamViewType.NEW_IMAGE,
        )  # fmt: skip
        lambda_.EventSourceMapping(
            self, "UngrantedStreamMapping", target=probe, event_source_arn=streamed.table_stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
        )  # fmt: skip

        # An API whose /permitted method's integration adds the function's permission, and whose
        # /unpermitted method's raw integration adds none.
        api = apigw.RestApi(self, "Api", deploy_options=apigw.StageOptions(stage_name="prod"))
        api.root.add_resource("permitted").add_method("GET", apigw.LambdaIntegration(probe))
        api.root.add_resource("unpermitted").add_method("GET", apigw.Integration(
            type=apigw.IntegrationType.AWS_PROXY, integration_http_method="POST",
            uri=f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{probe.function_arn}/invocations",
        ))  # fmt: skip
        for name, value in {
            "ProbeName": probe.function_name, "ProbeRoleArn": probe.role.role_arn if probe.role else "",
            "GrantedTable": granted.table_name, "OtherTable": other.table_name, "QueueUrl": queue.queue_url,
            "TopicArn": topic.topic_arn, "PermittedQueueUrl": permitted.queue_url,
            "UnpermittedQueueUrl": unpermitted.queue_url, "UnpermittedRuleArn": unpermitted_rule.attr_arn,
            "WriterArn": writer.state_machine_arn, "RestApiId": api.rest_api_id, "UnreadQueueUrl": unread.queue_url,
            "UndeliverableQueueUrl": undeliverable.queue_url, "StreamedTable": streamed.table_name,
        }.items():  # fmt: skip
            CfnOutput(self, name, value=value)


app = App()
PermissionsStack(app, "PermissionsStack")
app.synth()
