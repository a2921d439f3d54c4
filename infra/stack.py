"""The asyncstack stack: composes the constructs, holds no logic of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.fan_out_topic import FanOutTopic
from infra.packaging import LambdaTarget
from infra.python_function import LambdaPlatform, PythonFunction
from infra.work_queue import WorkQueue

ORDER_CREATED = "order.created"


def _table(scope: Construct, construct_id: str, key: str, *, ttl: str | None = None) -> dynamodb.Table:
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        time_to_live_attribute=ttl,
        removal_policy=RemovalPolicy.DESTROY if ttl else RemovalPolicy.RETAIN,
    )


class AsyncStack(Stack):
    """The order-events pipeline: ``order.created`` fans out to inventory, email and analytics."""

    def __init__(
        self, scope: Construct, construct_id: str, *, target: LambdaTarget, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        platform = LambdaPlatform.create(self, target=target)

        idempotency = _table(self, "IdempotencyTable", "id", ttl="expiration")
        inventory_table = _table(self, "InventoryTable", "pk")
        outbox = _table(self, "OutboxTable", "message_id")
        analytics_table = _table(self, "AnalyticsTable", "event_id")

        inventory = PythonFunction(
            self,
            "InventoryWorker",
            source="inventory",
            platform=platform,
            environment={
                "IDEMPOTENCY_TABLE_NAME": idempotency.table_name,
                "INVENTORY_TABLE_NAME": inventory_table.table_name,
            },
        )
        inventory_table.grant(inventory.function, "dynamodb:UpdateItem", "dynamodb:PutItem")
        email = PythonFunction(
            self,
            "EmailWorker",
            source="email",
            platform=platform,
            environment={
                "IDEMPOTENCY_TABLE_NAME": idempotency.table_name,
                "OUTBOX_TABLE_NAME": outbox.table_name,
            },
        )
        outbox.grant(email.function, "dynamodb:PutItem")
        for worker in (inventory, email):
            idempotency.grant(
                worker.function,
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            )
        analytics = PythonFunction(
            self,
            "AnalyticsWorker",
            source="analytics",
            platform=platform,
            environment={"ANALYTICS_TABLE_NAME": analytics_table.table_name},
        )
        analytics_table.grant(analytics.function, "dynamodb:BatchWriteItem")

        inventory_queue = WorkQueue(self, "InventoryQueue", consumer=inventory.function)
        email_queue = WorkQueue(self, "EmailQueue", consumer=email.function, max_concurrency=2)
        # Fire-and-forget tracking: bigger batches and a longer window mean fewer, fuller bulk writes.
        analytics_queue = WorkQueue(
            self,
            "AnalyticsQueue",
            consumer=analytics.function,
            batch_size=100,
            max_batching_window=Duration.seconds(5),
        )

        orders = FanOutTopic(self, "OrdersTopic")
        orders.subscribe(
            inventory_queue,
            filter_policy={"type": sns.SubscriptionFilter.string_filter(allowlist=[ORDER_CREATED])},
        )
        orders.subscribe(
            email_queue,
            filter_policy={"type": sns.SubscriptionFilter.string_filter(allowlist=[ORDER_CREATED])},
        )
        orders.subscribe(
            analytics_queue,
            filter_policy={"type": sns.SubscriptionFilter.string_filter(match_prefixes=["order."])},
        )

        outputs = {
            "OrdersTopicArn": orders.topic.topic_arn,
            "OrdersUndeliverableQueueUrl": orders.subscription_dead_letter_queue.queue_url,
            "InventoryQueueUrl": inventory_queue.queue.queue_url,
            "InventoryDeadLetterQueueUrl": inventory_queue.dead_letter_queue.queue_url,
            "EmailQueueUrl": email_queue.queue.queue_url,
            "EmailDeadLetterQueueUrl": email_queue.dead_letter_queue.queue_url,
            "AnalyticsQueueUrl": analytics_queue.queue.queue_url,
            "AnalyticsDeadLetterQueueUrl": analytics_queue.dead_letter_queue.queue_url,
            "InventoryTableName": inventory_table.table_name,
            "OutboxTableName": outbox.table_name,
            "AnalyticsTableName": analytics_table.table_name,
            "IdempotencyTableName": idempotency.table_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
