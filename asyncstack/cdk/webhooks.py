"""Signed webhook delivery: the signing secret, the delivery worker's retries, and the webhook DLQ.

Deliveries are delayed jobs (``asyncstack.cdk.delayed_jobs``): the first is queued when a job ends, each
retry is scheduled after the last failure (5 s through an SQS delay, the longer ones through
EventBridge Scheduler), and after the last attempt the delivery lands in the webhook DLQ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.delayed_jobs import DelayedJobs
from asyncstack.cdk.work_queue import standalone_dead_letter_queue

WEBHOOK_JOB_TYPES = [contract.WEBHOOK_DELIVERY_JOB_TYPE]
# Letters and digits only: 44 of them are a base64 key of 33 bytes (262 bits), what Standard Webhooks asks.
SIGNING_KEY_LENGTH = 44


class WebhookDelivery(Construct):
    """The secret, the delivery jobs (queue, schedules, DLQ) for ``worker``, and the webhook DLQ."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker: lambda_.Function,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        # The value is JSON {"current": <key>, "previous": ..., "previous_valid_until": ...}, generated
        # here at deploy time and rotated by an operator with asyncstack.runtime.webhooks.rotate_secret, which keeps
        # the previous key valid for a grace period. The worker may only read it. The secret is encrypted
        # with a key of its own (rotated yearly): only principals granted both the secret and the key
        # (grant_read gives kms:Decrypt through Secrets Manager) can read the signing keys.
        self.key = kms.Key(
            self,
            "SigningSecretKey",
            enable_key_rotation=True,
            description=f"Encrypts the webhook signing secret of {self.node.path}",
        )
        self.secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            description="Standard Webhooks signing keys (current and previous)",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"previous": None, "previous_valid_until": None}),
                generate_string_key="current",
                exclude_punctuation=True,
                password_length=SIGNING_KEY_LENGTH,
            ),
        )
        Validations.of(self.secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SMG4",
                reason="Rotation needs a grace period in which both keys sign (receivers update their copy); "
                "asyncstack.runtime.webhooks.rotate_secret does that, a Secrets Manager rotation function would not.",
            )
        )
        # No batching window: a receiver is waiting for each delivery. A batch holds only as many
        # deliveries as can all run to their worst case before the function's deadline.
        self.jobs = DelayedJobs(
            self, "Jobs", worker=worker, job_types=WEBHOOK_JOB_TYPES, max_batching_window=Duration.seconds(0),
            max_record_duration=Duration.seconds(contract.WEBHOOK_DELIVERY_MAX_SECONDS),
            alarm_actions=alarm_actions,
        )  # fmt: skip
        self.jobs.grant_scheduling(worker)
        self.dead_letter_queue, self.dead_letter_alarm = standalone_dead_letter_queue(
            self,
            "DeadLetterQueue",
            alarm_id="DeadLetterAlarm",
            holds="webhook deliveries that failed every attempt",
            alarm_description=f"A webhook of {self.node.path} failed every attempt: the job shows callback_failed",
            alarm_actions=alarm_actions,
        )
        self.secret.grant_read(worker)
        self.dead_letter_queue.grant_send_messages(worker)
        worker.add_environment(contract.WEBHOOK_SECRET_ARN, self.secret.secret_arn)
        worker.add_environment(contract.WEBHOOK_DEAD_LETTER_QUEUE_URL, self.dead_letter_queue.queue_url)

    def grant_queueing(self, function: lambda_.Function) -> None:
        """Let ``function`` queue first deliveries (it gets the delayed-jobs settings it needs)."""
        self.jobs.grant_scheduling(function)
