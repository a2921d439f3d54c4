"""The asyncstack stack: composes the constructs, holds no logic of its own.

Each pattern is composed by one method that takes what it uses and returns what others use, so the
composition reads top to bottom in ``__init__`` and no method depends on another having run. The
names the functions read come from ``shared.config`` and ``asyncstack.contract``, the event and job
types they route from ``shared``: nothing is typed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.alarms import AlarmTopic
from asyncstack.cdk.buckets import access_log_bucket, private_bucket
from asyncstack.cdk.delayed_jobs import DelayedJobs
from asyncstack.cdk.fan_out_topic import FanOutTopic
from asyncstack.cdk.job_api import ApiAuth, JobApi
from asyncstack.cdk.long_running_jobs import LongRunningJobs
from asyncstack.cdk.nag import acknowledge_wildcard, arn_of
from asyncstack.cdk.packaging import LambdaTarget
from asyncstack.cdk.python_function import LambdaPlatform, PythonFunction
from asyncstack.cdk.request_reply import RequestReply
from asyncstack.cdk.tables import on_demand_table
from asyncstack.cdk.webhooks import WebhookDelivery
from asyncstack.cdk.work_queue import WorkQueue
from infra.order_saga import OrderSaga
from shared import config
from shared.events import ORDER_CREATED, ORDER_EVENT_PREFIX, USER_EVENTS
from shared.exports import EXPORT_PREFIX
from shared.signup import DAILY_SUMMARY, JOB_TYPES
from shared.thumbnails import IMAGE_RESIZE


@dataclass(frozen=True)
class Tables:
    """The tables several patterns share."""

    idempotency: dynamodb.Table
    inventory: dynamodb.Table
    outbox: dynamodb.Table
    analytics: dynamodb.Table


@dataclass(frozen=True)
class Exports:
    """The report exports: their long-running jobs and the worker that runs them."""

    jobs: LongRunningJobs
    worker: PythonFunction


class AsyncStack(Stack):
    """Every pattern of the stack, each composed in one method below; outputs name every entry point."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target: LambdaTarget,
        api_auth: ApiAuth = ApiAuth.API_KEY,
        allow_insecure_callbacks: bool = False,
        alarm_emails: Sequence[str] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.platform = LambdaPlatform.create(self, target=target)
        self.outputs: dict[str, str] = {}
        self.alarm_topic = AlarmTopic(self, "Alarms", emails=alarm_emails)
        self.alarm_actions = self.alarm_topic.actions
        tables = Tables(
            idempotency=on_demand_table(self, "IdempotencyTable", "id", ttl="expiration"),
            inventory=on_demand_table(self, "InventoryTable", "pk"),
            outbox=on_demand_table(self, "OutboxTable", "message_id"),
            analytics=on_demand_table(self, "AnalyticsTable", "event_id"),
        )
        access_logs = access_log_bucket(self, "AccessLogs")

        orders = self._order_pipeline(tables)
        self._signups(tables)
        self._order_saga(tables)
        exports = self._exports(tables, access_logs)
        self._request_reply(access_logs)
        api, webhook_worker = self._job_api(api_auth, tables, orders, exports)
        if allow_insecure_callbacks:  # the local cloud's receivers listen on http://127.0.0.1
            for function in (api, exports.worker, webhook_worker):
                function.function.add_environment(contract.WEBHOOK_ALLOW_INSECURE, "true")
        self.outputs |= {
            "AlarmTopicArn": self.alarm_topic.topic.topic_arn,
            "InventoryTableName": tables.inventory.table_name,
            "OutboxTableName": tables.outbox.table_name,
            "AnalyticsTableName": tables.analytics.table_name,
            "IdempotencyTableName": tables.idempotency.table_name,
        }
        for name, value in self.outputs.items():
            CfnOutput(self, name, value=value)

    def _function(self, construct_id: str, source: str, **kwargs: Any) -> PythonFunction:
        return PythonFunction(self, construct_id, source=source, platform=self.platform, **kwargs)

    @staticmethod
    def _idempotent(idempotency: dynamodb.Table, *workers: PythonFunction) -> None:
        for worker in workers:
            idempotency.grant(
                worker.function,
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            )

    def _order_pipeline(self, tables: Tables) -> FanOutTopic:
        """Pub/sub: ``order.created`` fans out to inventory, email and analytics."""
        inventory = self._function(
            "InventoryWorker", "inventory",
            environment={contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name,
                         config.INVENTORY_TABLE_NAME: tables.inventory.table_name},
        )  # fmt: skip
        tables.inventory.grant(inventory.function, "dynamodb:UpdateItem", "dynamodb:PutItem")
        email = self._function(
            "EmailWorker", "email",
            environment={contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name,
                         config.OUTBOX_TABLE_NAME: tables.outbox.table_name},
        )  # fmt: skip
        analytics = self._function(
            "AnalyticsWorker",
            "analytics",
            environment={config.ANALYTICS_TABLE_NAME: tables.analytics.table_name},
        )
        tables.analytics.grant(analytics.function, "dynamodb:BatchWriteItem")
        tables.outbox.grant(email.function, "dynamodb:PutItem")
        self._idempotent(tables.idempotency, inventory, email)

        alarms = self.alarm_actions
        inventory_queue = WorkQueue(self, "InventoryQueue", consumer=inventory.function, alarm_actions=alarms)
        email_queue = WorkQueue(
            self, "EmailQueue", consumer=email.function, max_concurrency=2, alarm_actions=alarms
        )
        # Fire-and-forget tracking: bigger batches and a longer window mean fewer, fuller bulk writes.
        analytics_queue = WorkQueue(
            self, "AnalyticsQueue", consumer=analytics.function, batch_size=100,
            max_batching_window=Duration.seconds(5), alarm_actions=alarms,
        )  # fmt: skip
        orders = FanOutTopic(self, "OrdersTopic", alarm_actions=alarms)
        created = {"type": sns.SubscriptionFilter.string_filter(allowlist=[ORDER_CREATED])}
        orders.subscribe(inventory_queue, filter_policy=created)
        orders.subscribe(email_queue, filter_policy=created)
        orders.subscribe(
            analytics_queue,
            filter_policy={"type": sns.SubscriptionFilter.string_filter(match_prefixes=[ORDER_EVENT_PREFIX])},
        )
        self.outputs |= {
            "OrdersTopicArn": orders.topic.topic_arn,
            "OrdersUndeliverableQueueUrl": orders.subscription_dead_letter_queue.queue_url,
            "InventoryQueueUrl": inventory_queue.queue.queue_url,
            "InventoryDeadLetterQueueUrl": inventory_queue.dead_letter_queue.queue_url,
            "EmailQueueUrl": email_queue.queue.queue_url,
            "EmailDeadLetterQueueUrl": email_queue.dead_letter_queue.queue_url,
            "AnalyticsQueueUrl": analytics_queue.queue.queue_url,
            "AnalyticsDeadLetterQueueUrl": analytics_queue.dead_letter_queue.queue_url,
        }
        return orders

    def _signups(self, tables: Tables) -> None:
        """A welcome email now, follow-ups as delayed jobs, a daily summary as a recurring one."""
        mailer_environment = {
            contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name,
            config.OUTBOX_TABLE_NAME: tables.outbox.table_name,
        }
        jobs_worker = self._function("JobsWorker", "jobs", environment=mailer_environment)
        jobs = DelayedJobs(
            self, "Jobs", worker=jobs_worker.function, job_types=JOB_TYPES, alarm_actions=self.alarm_actions
        )
        jobs.add_recurring("DailySummary", job_type=DAILY_SUMMARY, expression="cron(0 6 * * ? *)")
        signup = self._function("SignupWorker", "signup", environment=mailer_environment)
        jobs.grant_scheduling(signup.function)
        for worker in (jobs_worker, signup):
            tables.outbox.grant(worker.function, "dynamodb:PutItem")
        self._idempotent(tables.idempotency, jobs_worker, signup)
        signup_queue = WorkQueue(
            self, "SignupQueue", consumer=signup.function, alarm_actions=self.alarm_actions
        )
        users = FanOutTopic(self, "UsersTopic", alarm_actions=self.alarm_actions)
        users.subscribe(
            signup_queue,
            filter_policy={"type": sns.SubscriptionFilter.string_filter(allowlist=list(USER_EVENTS))},
        )
        self.outputs |= {
            "UsersTopicArn": users.topic.topic_arn,
            "SignupQueueUrl": signup_queue.queue.queue_url,
            "SignupDeadLetterQueueUrl": signup_queue.dead_letter_queue.queue_url,
            "JobsQueueUrl": jobs.work_queue.queue.queue_url,
            "JobsDeadLetterQueueUrl": jobs.work_queue.dead_letter_queue.queue_url,
            "JobsScheduleDeadLetterQueueUrl": jobs.target_dead_letter_queue.queue_url,
            "JobsScheduleGroupName": jobs.group.ref,
            "JobsTableName": jobs.table.table_name,
        }

    def _order_saga(self, tables: Tables) -> None:
        """Orchestrated charge -> reserve -> confirm, compensated in reverse."""
        payments_table = on_demand_table(self, "PaymentsTable", "pk")
        payments = self._function(
            "OrderPayments", "order_payments",
            environment={config.PAYMENTS_TABLE_NAME: payments_table.table_name},
        )  # fmt: skip
        payments_table.grant(payments.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        inventory = self._function(
            "OrderInventory", "order_inventory",
            environment={config.INVENTORY_TABLE_NAME: tables.inventory.table_name},
        )  # fmt: skip
        tables.inventory.grant(
            inventory.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        )  # fmt: skip
        notifications = self._function(
            "OrderNotifications",
            "order_notifications",
            environment={config.OUTBOX_TABLE_NAME: tables.outbox.table_name},
        )
        tables.outbox.grant(notifications.function, "dynamodb:PutItem")
        saga = OrderSaga(
            self, "OrderSaga", payments=payments.function, inventory=inventory.function,
            notifications=notifications.function, alarm_actions=self.alarm_actions,
        )  # fmt: skip
        self.outputs |= {
            "OrderWorkflowArn": saga.workflow.arn,
            "PaymentsTableName": payments_table.table_name,
        }

    def _exports(self, tables: Tables, access_logs: s3.Bucket) -> Exports:
        """Long-running report exports: chunked, checkpointed, resumed by their workflow."""
        worker = self._function(
            "ExportWorker", "export_worker", timeout=Duration.minutes(5),
            environment={config.EXPORT_SOURCE_TABLE_NAME: tables.analytics.table_name},
        )  # fmt: skip
        tables.analytics.grant(worker.function, "dynamodb:Scan")
        jobs = LongRunningJobs(
            self, "Exports", worker=worker.function, access_logs=access_logs, results_prefix=EXPORT_PREFIX,
            alarm_actions=self.alarm_actions,
        )  # fmt: skip
        self.outputs |= {
            "ExportWorkflowArn": jobs.workflow.arn,
            "ExportJobsTableName": jobs.table.table_name,
            "ExportBucketName": jobs.bucket.bucket_name,
        }
        return Exports(jobs=jobs, worker=worker)

    def _request_reply(self, access_logs: s3.Bucket) -> None:
        """Image resizing, called over SQS or from a workflow with a task token."""
        images = private_bucket(self, "Images", access_logs=access_logs, expire_after=Duration.days(7))
        resizer = self._function(
            "ImageResize", "image_resize", timeout=Duration.seconds(60), memory_size=1024,
            environment={config.IMAGES_BUCKET_NAME: images.bucket_name},
        )  # fmt: skip
        for actions, resource in (
            (["s3:GetObject"], images.arn_for_objects("uploads/*")),
            # Without ListBucket, S3 answers a missing source with AccessDenied instead of NoSuchKey.
            (["s3:ListBucket"], images.bucket_arn),
            (["s3:PutObject"], images.arn_for_objects("thumbnails/*")),
        ):
            resizer.function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[resource]))
        for prefix in ("uploads", "thumbnails"):
            acknowledge_wildcard(
                resizer.role,
                f"Resource::{arn_of(images)}/{prefix}/*",
                "Images are named by their callers at run time; the worker reads uploads/ and writes "
                "thumbnails/ only.",
            )
        resize = RequestReply(
            self, "ImageResizeRpc", worker=resizer.function, action=IMAGE_RESIZE,
            alarm_actions=self.alarm_actions,
        )  # fmt: skip
        self.outputs |= {
            "ImagesBucketName": images.bucket_name,
            "ImageResizeQueueUrl": resize.requests.queue.queue_url,
            "ImageResizeDeadLetterQueueUrl": resize.requests.dead_letter_queue.queue_url,
            "ImageResizeReplyQueueUrl": resize.reply_queues["Default"].queue_url,
            "ImageResizeWorkflowArn": resize.workflow.arn,
        }

    def _job_api(
        self, auth: ApiAuth, tables: Tables, orders: FanOutTopic, exports: Exports
    ) -> tuple[PythonFunction, PythonFunction]:
        """The job API and signed webhooks: respond at once, then let clients poll or be called back.

        Returns the API's function and the webhook delivery worker."""
        webhook_worker = self._function(
            "WebhookDelivery", "webhook_delivery", timeout=Duration.seconds(60),
            environment={contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name},
        )  # fmt: skip
        exports.jobs.grant_jobs(webhook_worker.function, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self._idempotent(tables.idempotency, webhook_worker)
        webhooks = WebhookDelivery(
            self, "Webhooks", worker=webhook_worker.function, alarm_actions=self.alarm_actions
        )
        webhooks.grant_queueing(exports.worker.function)
        api = self._function(
            "ApiHandler", "api",
            environment={config.ORDERS_TOPIC_ARN: orders.topic.topic_arn,
                         contract.IDEMPOTENCY_TABLE_NAME: tables.idempotency.table_name},
        )  # fmt: skip
        self._idempotent(tables.idempotency, api)  # orders' Idempotency-Key records
        orders.topic.grant_publish(api.function)
        exports.jobs.grant_start(api.function)
        job_api = JobApi(self, "JobApi", handler=api.function, auth=auth)
        self.outputs |= {
            "JobApiUrl": job_api.url,
            "JobApiId": job_api.api.rest_api_id,
            "WebhookSecretArn": webhooks.secret.secret_arn,
            "WebhookDeadLetterQueueUrl": webhooks.dead_letter_queue.queue_url,
            "WebhookDeliveryQueueUrl": webhooks.jobs.work_queue.queue.queue_url,
            "WebhookDeliveryDeadLetterQueueUrl": webhooks.jobs.work_queue.dead_letter_queue.queue_url,
        }
        if job_api.api_key is not None:
            self.outputs["JobApiKeyId"] = job_api.api_key.key_id
        return api, webhook_worker
