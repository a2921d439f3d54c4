"""The asyncstack stack: composes the constructs, holds no logic of its own."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.buckets import access_log_bucket, private_bucket
from infra.delayed_jobs import DelayedJobs
from infra.fan_out_topic import FanOutTopic
from infra.long_running_jobs import LongRunningJobs
from infra.nag import acknowledge_wildcard, arn_of
from infra.order_saga import OrderSaga
from infra.packaging import LambdaTarget
from infra.python_function import LambdaPlatform, PythonFunction
from infra.request_reply import RequestReply
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

        # The order saga: orchestrated charge -> reserve -> confirm, compensated in reverse.
        payments_table = _table(self, "PaymentsTable", "pk")
        saga_payments = PythonFunction(
            self,
            "OrderPayments",
            source="order_payments",
            platform=platform,
            environment={"PAYMENTS_TABLE_NAME": payments_table.table_name},
        )
        payments_table.grant(
            saga_payments.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"
        )
        saga_inventory = PythonFunction(
            self,
            "OrderInventory",
            source="order_inventory",
            platform=platform,
            environment={"INVENTORY_TABLE_NAME": inventory_table.table_name},
        )
        inventory_table.grant(
            saga_inventory.function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        )
        saga_notifications = PythonFunction(
            self,
            "OrderNotifications",
            source="order_notifications",
            platform=platform,
            environment={"OUTBOX_TABLE_NAME": outbox.table_name},
        )
        outbox.grant(saga_notifications.function, "dynamodb:PutItem")
        saga = OrderSaga(
            self,
            "OrderSaga",
            payments=saga_payments.function,
            inventory=saga_inventory.function,
            notifications=saga_notifications.function,
        )

        # Long-running report exports: chunked, checkpointed, resumed by their workflow.
        access_logs = access_log_bucket(self, "AccessLogs")
        export_worker = PythonFunction(
            self,
            "ExportWorker",
            source="export_worker",
            platform=platform,
            timeout=Duration.minutes(5),
            environment={"EXPORT_SOURCE_TABLE_NAME": analytics_table.table_name},
        )
        analytics_table.grant(export_worker.function, "dynamodb:Scan")
        exports = LongRunningJobs(self, "Exports", worker=export_worker.function, access_logs=access_logs)

        # Request-reply: image resizing, called over SQS or from a workflow with a task token.
        images = private_bucket(self, "Images", access_logs=access_logs, expire_after=Duration.days(7))
        image_resize = PythonFunction(
            self,
            "ImageResize",
            source="image_resize",
            platform=platform,
            timeout=Duration.seconds(60),
            memory_size=1024,
            environment={"IMAGES_BUCKET_NAME": images.bucket_name},
        )
        image_resize.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[images.arn_for_objects("uploads/*")])
        )
        # Without ListBucket, S3 answers a missing source with AccessDenied instead of NoSuchKey.
        image_resize.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[images.bucket_arn])
        )
        image_resize.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[images.arn_for_objects("thumbnails/*")])
        )
        for prefix in ("uploads", "thumbnails"):
            acknowledge_wildcard(
                image_resize.role,
                f"Resource::{arn_of(images)}/{prefix}/*",
                "Images are named by their callers at run time; the worker reads uploads/ and writes "
                "thumbnails/ only.",
            )
        resize = RequestReply(self, "ImageResizeRpc", worker=image_resize.function, action="image.resize")

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
            "OrderWorkflowArn": saga.workflow.arn,
            "PaymentsTableName": payments_table.table_name,
            "ExportWorkflowArn": exports.workflow.arn,
            "ExportJobsTableName": exports.table.table_name,
            "ExportBucketName": exports.bucket.bucket_name,
            "ImagesBucketName": images.bucket_name,
            "ImageResizeQueueUrl": resize.requests.queue.queue_url,
            "ImageResizeDeadLetterQueueUrl": resize.requests.dead_letter_queue.queue_url,
            "ImageResizeReplyQueueUrl": resize.reply_queues["Default"].queue_url,
            "ImageResizeWorkflowArn": resize.workflow.arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
