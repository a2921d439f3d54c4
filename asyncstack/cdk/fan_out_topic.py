"""A fan-out topic: an encrypted SNS topic whose subscriptions feed work queues.

Each subscription uses raw message delivery (the queue receives the event itself, not an SNS
envelope), can filter on message attributes, and sends what SNS cannot deliver (a deleted
queue, a key it may not use) to the topic's subscription dead-letter queue instead of dropping it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from asyncstack.cdk.work_queue import (
    WorkQueue,
    any_message_alarm,
    explain_sqs_managed_encryption,
    tag_dead_letter_queue,
)


class FanOutTopic(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        master_key: kms.IKey | None = None,
        fifo: bool = False,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            master_key=master_key or kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            fifo=fifo or None,
            content_based_deduplication=True if fifo else None,
            enforce_ssl=True,
        )
        # SNS requires a standard queue as a subscription DLQ for standard topics, FIFO for FIFO.
        self.subscription_dead_letter_queue = sqs.Queue(
            self,
            "UndeliverableQueue",
            fifo=fifo or None,
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        tag_dead_letter_queue(self.subscription_dead_letter_queue)
        explain_sqs_managed_encryption(self.subscription_dead_letter_queue)
        Validations.of(self.subscription_dead_letter_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SQS3",
                reason="This queue is the dead-letter queue of the topic's subscriptions (set in their "
                "RedrivePolicy), which the rule does not look at.",
            )
        )
        self.undeliverable_alarm = any_message_alarm(
            self,
            "UndeliverableAlarm",
            self.subscription_dead_letter_queue,
            f"{self.node.path} could not deliver messages to a subscriber",
        )
        self.undeliverable_alarm.add_alarm_action(*alarm_actions)

    def subscribe(
        self,
        work_queue: WorkQueue,
        *,
        filter_policy: Mapping[str, sns.SubscriptionFilter] | None = None,
        raw_message_delivery: bool = True,
    ) -> None:
        """Deliver this topic's messages (those matching ``filter_policy``) to ``work_queue``."""
        self.topic.add_subscription(
            subscriptions.SqsSubscription(
                work_queue.queue,
                raw_message_delivery=raw_message_delivery,
                filter_policy=dict(filter_policy) if filter_policy else None,
                dead_letter_queue=self.subscription_dead_letter_queue,
            )
        )
