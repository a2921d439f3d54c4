"""PipesStack: EventBridge Pipes (CloudFormation's AWS::Pipes::Pipe), deployed with the CDK CLI by
``tests/e2e/test_pipes.py``; runnable as a script from the repo root.

- OrderPipe: an SQS queue, filtered on the body, enriched by a Lambda function, into a queue through
  an input template.
- ChangePipe: a DynamoDB stream into the default event bus, where a rule sends the events to a queue.
- ReadingPipe: a Kinesis stream, enriched by an Express state machine, into an SNS topic that a queue
  subscribes to.
- JobPipe: an SQS queue into a Lambda function (which forwards each batch to a queue).
- RunPipe: an SQS queue into a standard state machine (whose execution sends its input to a queue).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_pipes as pipes
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
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
        outputs = {
            "OrdersQueueUrl": orders.queue_url, "EnrichedQueueUrl": enriched.queue_url,
            "ItemsTableName": table.table_name, "ChangesQueueUrl": changes.queue_url,
        } | self._reading_pipe(role) | self._job_pipe(role) | self._run_pipe(role)  # fmt: skip
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _reading_pipe(self, role: iam.Role) -> dict[str, str]:
        readings = kinesis.Stream(
            self, "Readings", shard_count=1, encryption=kinesis.StreamEncryption.MANAGED
        )
        readings.grant_read(role)
        label = sfn.Map(self, "LabelEach").item_processor(
            sfn.Pass(self, "Label", parameters={"device.$": "$.partitionKey", "labelled": True})
        )
        labeller = sfn.StateMachine(
            self, "Labeller", definition_body=sfn.DefinitionBody.from_chainable(label),
            state_machine_type=sfn.StateMachineType.EXPRESS,
        )  # fmt: skip
        labeller.grant_start_sync_execution(role)
        topic, labelled = sns.Topic(self, "Labelled"), sqs.Queue(self, "LabelledReadings")
        topic.add_subscription(subscriptions.SqsSubscription(labelled, raw_message_delivery=True))
        topic.grant_publish(role)
        pipes.CfnPipe(
            self, "ReadingPipe", role_arn=role.role_arn, source=readings.stream_arn,
            enrichment=labeller.state_machine_arn, target=topic.topic_arn,
            source_parameters=pipes.CfnPipe.PipeSourceParametersProperty(
                kinesis_stream_parameters=pipes.CfnPipe.PipeSourceKinesisStreamParametersProperty(
                    starting_position="TRIM_HORIZON", batch_size=10
                )
            ),
        )  # fmt: skip
        return {"ReadingsStreamName": readings.stream_name, "LabelledQueueUrl": labelled.queue_url}

    def _job_pipe(self, role: iam.Role) -> dict[str, str]:
        jobs, forwarded = sqs.Queue(self, "Jobs"), sqs.Queue(self, "Forwarded")
        jobs.grant_consume_messages(role)
        forward = lambda_.Function(
            self, "Forward", runtime=lambda_.Runtime.PYTHON_3_11, handler="forward.handler",
            code=lambda_.Code.from_asset(str(ENRICH), exclude=["__pycache__"]), timeout=Duration.seconds(5),
            environment={"QUEUE_URL": forwarded.queue_url},
        )  # fmt: skip
        forwarded.grant_send_messages(forward)
        forward.grant_invoke(role)
        pipes.CfnPipe(
            self, "JobPipe", role_arn=role.role_arn, source=jobs.queue_arn, target=forward.function_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                lambda_function_parameters=pipes.CfnPipe.PipeTargetLambdaFunctionParametersProperty(
                    invocation_type="REQUEST_RESPONSE"
                ),
                input_template='{"job": <$.body.id>}',
            ),
        )  # fmt: skip
        return {"JobsQueueUrl": jobs.queue_url, "ForwardedQueueUrl": forwarded.queue_url}

    def _run_pipe(self, role: iam.Role) -> dict[str, str]:
        runs, started = sqs.Queue(self, "Runs"), sqs.Queue(self, "Started")
        runs.grant_consume_messages(role)
        report = tasks.SqsSendMessage(
            self, "Report", queue=started, message_body=sfn.TaskInput.from_json_path_at("$")
        )
        runner = sfn.StateMachine(self, "Runner", definition_body=sfn.DefinitionBody.from_chainable(report))
        runner.grant_start_execution(role)
        pipes.CfnPipe(
            self, "RunPipe", role_arn=role.role_arn, source=runs.queue_arn, target=runner.state_machine_arn,
            target_parameters=pipes.CfnPipe.PipeTargetParametersProperty(
                step_function_state_machine_parameters=pipes.CfnPipe.PipeTargetStateMachineParametersProperty(
                    invocation_type="FIRE_AND_FORGET"
                ),
            ),
        )  # fmt: skip
        return {"RunsQueueUrl": runs.queue_url, "StartedQueueUrl": started.queue_url}


app = App()
PipesStack(app, "PipesStack")
app.synth()
