"""A work queue: an SQS queue, its dead-letter queue and the Lambda function that consumes it.

Defaults follow AWS's guidance for SQS event sources, so a caller gets them without asking:
the visibility timeout is computed (6 x function timeout + batching window) and never set by
hand, partial batch responses are on, a poison message stops after ``max_receive_count``
receives in a DLQ that outlives it, both queues are encrypted and refuse plain HTTP, and two
alarms watch the DLQ depth and the age of the oldest message.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Tags, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.nag import explain_synchronous_invoker, skip_checkov

LAMBDA_DEFAULT_TIMEOUT = Duration.seconds(3)


def visibility_timeout_for(function_timeout: Duration, batching_window: Duration) -> Duration:
    """AWS's rule for Lambda-consumed queues: at least 6 x the timeout plus the batching window."""
    return Duration.seconds(6 * function_timeout.to_seconds() + batching_window.to_seconds())


def any_message_alarm(
    scope: Construct, construct_id: str, queue: sqs.IQueue, description: str
) -> cloudwatch.Alarm:
    """An alarm that fires as soon as one message waits in ``queue`` (for dead-letter queues)."""
    return queue.metric_approximate_number_of_messages_visible(
        period=Duration.minutes(1), statistic="Maximum"
    ).create_alarm(
        scope,
        construct_id,
        alarm_description=description,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def explain_sqs_managed_encryption(queue: sqs.Queue) -> None:
    """Say in the template why a queue encrypted with SSE-SQS has no customer managed KMS key (checkov CKV_AWS_27)."""
    skip_checkov(
        queue,
        "CKV_AWS_27",
        "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled: keys owned and rotated by SQS). A customer "
        "managed KMS key would need a key policy for every service that sends here (SNS, EventBridge "
        "Scheduler, Step Functions) and a KMS request per message batch; who may read or send is "
        "governed by IAM grants and the queue's TLS-only policy.",
    )


def tag_dead_letter_queue(queue: sqs.IQueue) -> None:
    """Mark a queue as a dead-letter queue, for tools that list them (the local dashboard)."""
    Tags.of(queue).add(contract.DEAD_LETTER_QUEUE_TAG, "true")


def standalone_dead_letter_queue(
    scope: Construct,
    construct_id: str,
    *,
    alarm_id: str,
    holds: str,
    alarm_description: str,
    alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
) -> tuple[sqs.Queue, cloudwatch.Alarm]:
    """A dead-letter queue that no redrive policy names (its senders put messages there themselves,
    or name it in a DeadLetterConfig cdk-nag's SQS3 rule cannot see): kept 14 days, encrypted,
    TLS-only, with an alarm at the first message. ``holds`` says what it holds, for the SQS3 reason."""
    queue = sqs.Queue(
        scope,
        construct_id,
        retention_period=Duration.days(14),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    tag_dead_letter_queue(queue)
    explain_sqs_managed_encryption(queue)
    Validations.of(queue).acknowledge(
        Acknowledgment(
            id="AwsSolutions::AwsSolutions-SQS3", reason=f"This queue is a dead-letter queue: {holds}."
        )
    )
    alarm = any_message_alarm(scope, alarm_id, queue, alarm_description)
    alarm.add_alarm_action(*alarm_actions)
    return queue, alarm


def batch_size_for(function_timeout: Duration, max_record_duration: Duration) -> int:
    """The largest batch (at most 10) whose every record can run within the timeout at its worst case."""
    return max(1, min(10, int(function_timeout.to_seconds() // max_record_duration.to_seconds())))


class WorkQueue(Construct):
    """An SQS queue consumed by ``consumer`` through an event source mapping, with a DLQ and alarms.

    The consumer gets ``QUEUE_URL``, ``DEAD_LETTER_QUEUE_URL`` and ``IDEMPOTENCY_TTL_SECONDS``
    in its environment (read by ``asyncstack.runtime.consumer.EventConsumer``), permission to consume the
    queue and to send poison messages straight to the DLQ.

    ``max_record_duration``: the longest one record can take (a worker that calls slow third parties).
    It becomes the consumer's shutdown margin (no record starts unless it can finish before the
    deadline) and sizes the batch so that a batch of worst-case records all start: records released
    at the deadline would gain a receive each time and could reach the DLQ without being tried.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        consumer: lambda_.Function,
        batch_size: int | None = None,
        max_record_duration: Duration | None = None,
        max_batching_window: Duration = Duration.seconds(1),
        max_concurrency: int | None = 5,
        max_receive_count: int = 5,
        retention_period: Duration = Duration.days(4),
        dead_letter_retention_period: Duration = Duration.days(14),
        fifo: bool = False,
        encryption_key: kms.IKey | None = None,
        max_message_age: Duration = Duration.minutes(15),
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        timeout = consumer.timeout or LAMBDA_DEFAULT_TIMEOUT
        if batch_size is None:
            batch_size = 10 if max_record_duration is None else batch_size_for(timeout, max_record_duration)
        # Lambda does not support a batching window on FIFO queues.
        window = Duration.seconds(0) if fifo else max_batching_window
        encryption = sqs.QueueEncryption.KMS if encryption_key else sqs.QueueEncryption.SQS_MANAGED
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            fifo=fifo or None,
            retention_period=dead_letter_retention_period,
            encryption=encryption,
            encryption_master_key=encryption_key,
            enforce_ssl=True,
        )
        tag_dead_letter_queue(self.dead_letter_queue)
        self.queue = sqs.Queue(
            self,
            "Queue",
            fifo=fifo or None,
            content_based_deduplication=True if fifo else None,
            retention_period=retention_period,
            visibility_timeout=visibility_timeout_for(timeout, window),
            encryption=encryption,
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )
        if encryption_key is None:
            explain_sqs_managed_encryption(self.dead_letter_queue)
            explain_sqs_managed_encryption(self.queue)
        self.consumer = consumer
        self.event_source = sources.SqsEventSource(
            self.queue,
            batch_size=batch_size,
            max_batching_window=None if fifo else window,
            report_batch_item_failures=True,
            max_concurrency=max_concurrency,
        )
        consumer.add_event_source(self.event_source)
        explain_synchronous_invoker(
            consumer,
            invoker=f"the SQS event source mapping of {self.node.path} (a failed record returns to the queue "
            f"and reaches its dead-letter queue after {max_receive_count} receives)",
            concurrency=None
            if max_concurrency is None
            else f"the mapping's MaximumConcurrency of {max_concurrency} caps the concurrent invocations",
        )
        self.dead_letter_queue.grant_send_messages(consumer)
        consumer.add_environment(contract.QUEUE_URL, self.queue.queue_url)
        consumer.add_environment(contract.DEAD_LETTER_QUEUE_URL, self.dead_letter_queue.queue_url)
        consumer.add_environment(contract.IDEMPOTENCY_TTL_SECONDS, str(int(retention_period.to_seconds())))
        if max_record_duration is not None:
            consumer.add_environment(
                contract.SHUTDOWN_MARGIN_MS, str(int(max_record_duration.to_milliseconds()))
            )

        self.dead_letter_alarm = any_message_alarm(
            self,
            "DeadLetterAlarm",
            self.dead_letter_queue,
            f"Messages in the dead-letter queue of {self.node.path}: inspect and redrive",
        )
        self.age_alarm = self.queue.metric_approximate_age_of_oldest_message(
            period=Duration.minutes(1), statistic="Maximum"
        ).create_alarm(
            self,
            "OldestMessageAlarm",
            alarm_description=f"{self.node.path} is falling behind: its oldest message is older than "
            f"{int(max_message_age.to_seconds())} s",
            threshold=max_message_age.to_seconds(),
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm in (self.dead_letter_alarm, self.age_alarm):
            alarm.add_alarm_action(*alarm_actions)
