"""PipesStack: EventBridge Pipes (CloudFormation's AWS::Pipes::Pipe), deployed with the CDK CLI by
``tests/e2e/test_pipes.py``; runnable as a script from the repo root.

- OrderPipe: an SQS queue, filtered on the body, enriched by a Lambda function, into a queue through
  an input template.
- ChangePipe: a DynamoDB stream into the default event bus, where a rule sends the events to a queue.
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ENRICH = Path(__file__).resolve().parent / "enrich"
CHANGE_SOURCE = "pipes.test"


class PipesStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(self, "PipeRole", assumed_by=iam.ServicePrincipal("pipes.amazonaws.com"))
        orders, enriched = sqs.Queue(self, "Orders"), sqs.Queue(self, "Enriched")
        orders.grant_consume_messages(role)
        enriched.grant_send_messages(role)
        enrich = lambda_.Function(
            self, "Enrich", runtime=lambda_.Runtime.PYTHON_3_11, handler="enrich.handler",
            code=lambda_.Code.from_asset(str(ENRICH), exclude=["__pycache__"]), timeout=Duration.seconds(5),
        )  # fmt: skip
        enrich.grant_invoke(role)
        pipes.CfnPipe(
            self, "OrderPipe", role_arn=role.role_arn, source=orders.queue_arn, enrichment=enrich.function_arn,
            target=enriched.queue_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                sqs_queue_parameters=pipes.CfnPipe.PipeSourceSqsQueueParametersProperty(
                    batch_size=5, maximum_batching_window_in_seconds=1
                ),
                filter_criteria=pipes.CfnPipe.FilterCriteriaProperty(
                    filters=[pipes.CfnPipe.FilterProperty(pattern=json.dumps({"body": {"kind": ["order"]}}))]
                ),
            ),
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                input_template='{"id": <$.order.id>, "summary": "order <$.order.id> enriched: <$.enriched>"}'
            ),
        )  # fmt: skip

        table = dynamodb.Table(
            self, "Items", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
            stream=dynamodb.StreamViewType.NEW_IMAGE,
        )  # fmt: skip
        table.grant_stream_read(role)
        bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        bus.grant_put_events_to(role)
        changes = sqs.Queue(self, "Changes")
        events.Rule(
            self, "ChangeRule", event_pattern=events.EventPattern(source=[CHANGE_SOURCE]),
            targets=[targets.SqsQueue(changes)],
        )  # fmt: skip
        pipes.CfnPipe(
            self, "ChangePipe", role_arn=role.role_arn, source=table.table_stream_arn or "", target=bus.event_bus_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                dynamo_db_stream_parameters=pipes.CfnPipe.PipeSourceDynamoDBStreamParametersProperty(
                    starting_position="TRIM_HORIZON", batch_size=10
                )
            ),
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                event_bridge_event_bus_parameters=pipes.CfnPipe.PipeTargetEventBridgeEventBusParametersProperty(
                    detail_type="ItemChanged", source=CHANGE_SOURCE
                )
            ),
        )  # fmt: skip
        for name, value in {
            "OrdersQueueUrl": orders.queue_url, "EnrichedQueueUrl": enriched.queue_url,
            "ItemsTableName": table.table_name, "ChangesQueueUrl": changes.queue_url,
        }.items():  # fmt: skip
            CfnOutput(self, name, value=value)


app = App()
PipesStack(app, "PipesStack")
app.synth()
