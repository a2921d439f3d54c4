"""The asyncstack stack: composes the constructs, holds no logic of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.delayed_jobs import DelayedJobs
from infra.fan_out_topic import FanOutTopic
from infra.packaging import LambdaTarget
from infra.python_function import LambdaPlatform, PythonFunction
from infra.work_queue import WorkQueue

ORDER_CREATED = "order.created"
USER_EVENTS = ["user.signed_up", "user.converted"]
# The job types shared.signup runs; each is also the type of the job's message.
JOB_TYPES = ["job.signup_reminder", "job.trial_expiry_warning", "job.daily_summary"]


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

        # Signups: a welcome email now, follow-ups as delayed jobs, a daily summary as a recurring one.
        jobs_worker = PythonFunction(
            self,
            "JobsWorker",
            source="jobs",
            platform=platform,
            environment={
                "IDEMPOTENCY_TABLE_NAME": idempotency.table_name,
                "OUTBOX_TABLE_NAME": outbox.table_name,
            },
        )
        jobs = DelayedJobs(self, "Jobs", worker=jobs_worker.function, job_types=JOB_TYPES)
        jobs.add_recurring("DailySummary", job_type="job.daily_summary", expression="cron(0 6 * * ? *)")
        signup = PythonFunction(
            self,
            "SignupWorker",
            source="signup",
            platform=platform,
            environment={
                "IDEMPOTENCY_TABLE_NAME": idempotency.table_name,
                "OUTBOX_TABLE_NAME": outbox.table_name,
            },
        )
        jobs.grant_scheduling(signup.function)
        for worker in (email, jobs_worker, signup):
            outbox.grant(worker.function, "dynamodb:PutItem")
        for worker in (inventory, email, jobs_worker, signup):
            idempotency.grant(
                worker.function,
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            )
        signup_queue = WorkQueue(self, "SignupQueue", consumer=signup.function)
        users = FanOutTopic(self, "UsersTopic")
        users.subscribe(
            signup_queue, filter_policy={"type": sns.SubscriptionFilter.string_filter(allowlist=USER_EVENTS)}
        )

        outputs = {
            "OrdersTopicArn": orders.topic.topic_arn,
            "UsersTopicArn": users.topic.topic_arn,
            "SignupQueueUrl": signup_queue.queue.queue_url,
            "SignupDeadLetterQueueUrl": signup_queue.dead_letter_queue.queue_url,
            "JobsQueueUrl": jobs.work_queue.queue.queue_url,
            "JobsDeadLetterQueueUrl": jobs.work_queue.dead_letter_queue.queue_url,
            "JobsScheduleDeadLetterQueueUrl": jobs.target_dead_letter_queue.queue_url,
            "JobsScheduleGroupName": jobs.group.ref,
            "JobsTableName": jobs.table.table_name,
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
