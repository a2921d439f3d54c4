"""Where alarms go: one encrypted, TLS-only SNS topic per stack that every alarm notifies.

An alarm with no action only changes colour in the console. Every construct that creates alarms
takes ``alarm_actions`` and the stack passes this topic's to each, and the ``AlarmsNotify`` rule
fails synthesis on any alarm left without an action.

The topic is encrypted with a key of its own: CloudWatch may not use the AWS managed SNS key, so
the key's policy lets CloudWatch (from this account only) encrypt the notifications it publishes.
Subscribe with ``aws sns subscribe --topic-arn <AlarmTopicArn> --protocol email
--notification-endpoint you@example.com`` or, at deploy time, ``--context asyncstack:alarmEmail=...``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import Annotations, IAspect, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct


class AlarmTopic(Construct):
    """The topic the stack's alarms notify; ``actions`` is what to pass as ``alarm_actions``."""

    def __init__(self, scope: Construct, construct_id: str, *, emails: Sequence[str] = ()) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description=f"Encrypts the alarm notifications of {self.node.path}",
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.actions: tuple[cloudwatch.IAlarmAction, ...] = (cloudwatch_actions.SnsAction(self.topic),)


@jsii.implements(IAspect)
class AlarmsNotify:
    """Synth-time rule: every alarm has an action (an alarm that notifies nobody is only a colour)."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cloudwatch.CfnAlarm):
            return
        if not Stack.of(node).resolve(node.alarm_actions):
            Annotations.of(node).add_error(
                f"alarm {node.node.path} notifies nobody. Fix: pass the stack's alarm actions "
                "(AlarmTopic.actions) as alarm_actions to the construct that creates it."
            )
