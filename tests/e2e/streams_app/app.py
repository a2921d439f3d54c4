"""StreamsStack: tables whose DynamoDB streams feed a recording function through event source mappings,
one per behaviour Lambda has for streams. Deployed with the CDK CLI by ``tests/e2e/test_streams.py``;
runnable as a script from the repo root.

- Ordered: every change, in order (TRIM_HORIZON, batches of up to 10).
- Filtered: only INSERTs whose new image has ``kind`` = ``wanted`` (FilterCriteria).
- Failing: a record that always fails is isolated by bisecting its batch and, after one retry, sent
  to the on-failure queue; the others go on.
- Partial: the function reports failed records (ReportBatchItemFailures) instead of failing the batch.
- Readings: a Kinesis stream of two shards whose records with ``"kind": "reading"`` reach a recorder.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

HANDLERS = Path(__file__).resolve().parent / "handlers"


class StreamsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        sink = dynamodb.Table(
            self, "Sink",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
        )  # fmt: skip

        def recorder(
            construct_id: str, handler: str = "recorder.handler", **environment: str
        ) -> lambda_.Function:
            function = lambda_.Function(
                self, construct_id, runtime=lambda_.Runtime.PYTHON_3_11, handler=handler,
                code=lambda_.Code.from_asset(str(HANDLERS), exclude=["__pycache__"]),
                timeout=Duration.seconds(10), environment={"SINK_TABLE": sink.table_name, **environment},
            )  # fmt: skip
            sink.grant_read_write_data(function)
            return function

        plain, reporting = recorder("Recorder"), recorder("Reporter", REPORT_FAILURES="true")

        def table(construct_id: str) -> dynamodb.Table:
            created = dynamodb.Table(
                self, construct_id,
                partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            )  # fmt: skip
            CfnOutput(self, f"{construct_id}TableName", value=created.table_name)
            return created

        trim_horizon = lambda_.StartingPosition.TRIM_HORIZON
        plain.add_event_source(
            sources.DynamoEventSource(table("Ordered"), starting_position=trim_horizon, batch_size=10)
        )
        plain.add_event_source(
            sources.DynamoEventSource(
                table("Filtered"), starting_position=trim_horizon,
                filters=[lambda_.FilterCriteria.filter(
                    {"eventName": lambda_.FilterRule.is_equal("INSERT"),
                     "dynamodb": {"NewImage": {"kind": {"S": lambda_.FilterRule.is_equal("wanted")}}}}
                )],
            )
        )  # fmt: skip
        failed = sqs.Queue(self, "FailedBatches")
        plain.add_event_source(
            sources.DynamoEventSource(
                table("Failing"), starting_position=trim_horizon, batch_size=4, bisect_batch_on_error=True,
                retry_attempts=1, on_failure=sources.SqsDlq(failed),
            )
        )  # fmt: skip
        reporting.add_event_source(
            sources.DynamoEventSource(
                table("Partial"), starting_position=trim_horizon, batch_size=10, report_batch_item_failures=True,
                max_batching_window=Duration.seconds(1),
            )
        )  # fmt: skip
        readings = kinesis.Stream(
            self, "Readings", shard_count=2, encryption=kinesis.StreamEncryption.MANAGED
        )
        recorder("KinesisRecorder", "kinesis_recorder.handler").add_event_source(
            sources.KinesisEventSource(
                readings, starting_position=trim_horizon, batch_size=5,
                filters=[lambda_.FilterCriteria.filter({"data": {"kind": lambda_.FilterRule.is_equal("reading")}})],
            )
        )  # fmt: skip
        for name, value in {
            "ReadingsStreamName": readings.stream_name,
            "SinkTableName": sink.table_name,
            "FailedBatchesQueueUrl": failed.queue_url,
            "RecorderFunctionName": plain.function_name,
        }.items():
            CfnOutput(self, name, value=value)


app = App()
StreamsStack(app, "StreamsStack")
app.synth()
