"""BucketEventsStack: S3 event notifications (through CDK's own custom resource, in Python), a bucket
emptied on deletion (CDK's Custom::S3AutoDeleteObjects, in Node.js) and a Lambda-backed custom resource, deployed to the local cloud with the CDK CLI by ``tests/e2e/test_bucket_events.py``.
The context value ``probe_name`` changes one of the custom resource's properties (an Update).

FailingResourceStack holds one custom resource whose function answers FAILED: its deploy must fail
with CloudFormation's words. Runnable as a script from the repo root.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as notifications
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

HANDLERS = Path(__file__).resolve().parent / "handlers"
# Properties of every JSON type: CloudFormation hands a custom resource strings for the scalars.
PROPERTIES = {
    "Flag": True,
    "Count": 3,
    "Ratio": 0.5,
    "Name": "probe",
    "Nested": {"On": False},
    "List": [1, "a", True],
}


def handler_function(
    scope: Construct, construct_id: str, handler: str, **environment: str
) -> lambda_.Function:
    return lambda_.Function(
        scope,
        construct_id,
        runtime=lambda_.Runtime.PYTHON_3_11,
        handler=handler,
        code=lambda_.Code.from_asset(str(HANDLERS), exclude=["__pycache__"]),
        timeout=Duration.seconds(10),
        environment=environment,
    )


class BucketEventsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        table = dynamodb.Table(
            self,
            "Seen",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            removal_policy=RemovalPolicy.DESTROY,
        )
        bucket = s3.Bucket(
            self,
            "Uploads",
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
            event_bridge_enabled=True,
        )
        queue = sqs.Queue(self, "CreatedQueue")
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            notifications.SqsDestination(queue),
            s3.NotificationKeyFilter(prefix="in/"),
        )
        on_json = handler_function(self, "OnJson", "s3_events.handler", TABLE_NAME=table.table_name)
        table.grant_write_data(on_json)
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            notifications.LambdaDestination(on_json),
            s3.NotificationKeyFilter(suffix=".json"),
        )

        reports, reported = sns.Topic(self, "Reports"), sqs.Queue(self, "ReportedQueue")
        reports.add_subscription(subscriptions.SqsSubscription(reported, raw_message_delivery=True))
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            notifications.SnsDestination(reports),
            s3.NotificationKeyFilter(prefix="reports/"),
        )
        on_bus = sqs.Queue(self, "BusQueue")
        events.Rule(
            self, "ObjectCreatedRule", targets=[targets.SqsQueue(on_bus)],
            event_pattern=events.EventPattern(
                source=["aws.s3"], detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": "reports/"}]}},
            ),
        )  # fmt: skip

        provider = handler_function(self, "Provider", "custom_resource.handler", TABLE_NAME=table.table_name)
        table.grant_write_data(provider)
        name = self.node.try_get_context("probe_name") or PROPERTIES["Name"]
        resource = CustomResource(
            self, "Probe", service_token=provider.function_arn, properties={**PROPERTIES, "Name": name}
        )

        for name, value in {
            "BucketName": bucket.bucket_name,
            "QueueUrl": queue.queue_url,
            "ReportedQueueUrl": reported.queue_url,
            "BusQueueUrl": on_bus.queue_url,
            "TableName": table.table_name,
            "ProbeEcho": resource.get_att_string("Echo"),
            "ProbeId": resource.ref,
            "ProviderName": provider.function_name,
        }.items():
            CfnOutput(self, name, value=value)


class FailingResourceStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        provider = handler_function(self, "Provider", "custom_resource.handler")
        CustomResource(
            self, "Refused", service_token=provider.function_arn, properties={"Fail": "quota exceeded"}
        )


app = App()
BucketEventsStack(app, "BucketEventsStack")
FailingResourceStack(app, "FailingResourceStack")
app.synth()
