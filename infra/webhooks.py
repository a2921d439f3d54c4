"""Signed webhook delivery: the signing secret, the delivery worker's retries, and the webhook DLQ.

Deliveries are delayed jobs (``infra.delayed_jobs``): the first is queued when a job ends, each
retry is scheduled after the last failure (5 s through an SQS delay, the longer ones through
EventBridge Scheduler), and after the last attempt the delivery lands in the webhook DLQ.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.delayed_jobs import DelayedJobs
from infra.work_queue import standalone_dead_letter_queue

WEBHOOK_JOB_TYPES = ["webhook.deliver"]


class WebhookDelivery(Construct):
    """The secret, the delivery jobs (queue, schedules, DLQ) for ``worker``, and the webhook DLQ."""

    def __init__(self, scope: Construct, construct_id: str, *, worker: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        # The value is JSON {"current": "whsec_...", "previous": ..., "previous_valid_until": ...},
        # initialised by the worker on first use (shared.webhooks.ensure_secret) and rotated with
        # shared.webhooks.rotate_secret, which keeps the previous key valid for a grace period.
        self.secret = secretsmanager.Secret(
            self, "SigningSecret", description="Standard Webhooks signing keys (current and previous)"
        )
        Validations.of(self.secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SMG4",
                reason="Rotation needs a grace period in which both keys sign (receivers update their copy); "
                "shared.webhooks.rotate_secret does that, a Secrets Manager rotation function would not.",
            )
        )
        # No batching window: a receiver is waiting for each delivery.
        self.jobs = DelayedJobs(
            self, "Jobs", worker=worker, job_types=WEBHOOK_JOB_TYPES, max_batching_window=Duration.seconds(0)
        )
        self.jobs.grant_scheduling(worker)
        self.dead_letter_queue, self.dead_letter_alarm = standalone_dead_letter_queue(
            self,
            "DeadLetterQueue",
            alarm_id="DeadLetterAlarm",
            holds="webhook deliveries that failed every attempt",
            alarm_description=f"A webhook of {self.node.path} failed every attempt: the job shows callback_failed",
        )
        self.secret.grant_read(worker)
        self.secret.grant_write(worker)
        self.dead_letter_queue.grant_send_messages(worker)
        worker.add_environment("WEBHOOK_SECRET_ARN", self.secret.secret_arn)
        worker.add_environment("WEBHOOK_DEAD_LETTER_QUEUE_URL", self.dead_letter_queue.queue_url)

    def grant_queueing(self, function: lambda_.Function) -> None:
        """Let ``function`` queue first deliveries (it gets the delayed-jobs settings it needs)."""
        self.jobs.grant_scheduling(function)
