"""AWS::SNS::Subscription and AWS::SNS::TopicPolicy on moto's SNS backend."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel
from moto.sns.exceptions import SNSNotFoundError
from moto.sns.models import SNSBackend, Topic, sns_backends
from moto.utilities.arns import parse_arn

from ._base import CfnResource, changed, properties, to_bool, to_json

# FilterPolicyScope first: moto validates FilterPolicy against the scope already set
_SUBSCRIPTION_ATTRIBUTES: dict[str, Callable[[Any], Any]] = {
    "RawMessageDelivery": to_bool,
    "FilterPolicyScope": str,
    "FilterPolicy": to_json,
    "RedrivePolicy": to_json,
    "DeliveryPolicy": to_json,
    "SubscriptionRoleArn": str,
}


def _backend(topic_arn: str) -> SNSBackend:
    """The backend of the topic's own account and region (a subscription lives with its topic)."""
    arn = parse_arn(topic_arn)
    return sns_backends[arn.account][arn.region]


class SnsSubscription(CfnResource, CloudFormationModel):
    """Ref is the subscription ARN; Endpoint, Protocol and TopicArn changes replace it."""

    REF = "arn"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn"}

    def __init__(self, arn: str, props: dict[str, Any]) -> None:
        self.arn = arn
        self.props = props

    TYPE = "AWS::SNS::Subscription"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SnsSubscription:
        props = properties(cloudformation_json)
        backend = _backend(props["TopicArn"])
        subscription = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        cls._apply(backend, subscription.arn, props)
        return cls(subscription.arn, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SnsSubscription,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SnsSubscription:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "TopicArn", "Endpoint", "Protocol"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        backend = _backend(props["TopicArn"])
        subscription = backend.subscriptions[original_resource.arn]
        backend.set_subscription_attributes(original_resource.arn, "FilterPolicy", "")
        for name in _SUBSCRIPTION_ATTRIBUTES:
            subscription.attributes.pop(name, None)
        subscription.attributes["RawMessageDelivery"] = False
        cls._apply(backend, original_resource.arn, props)
        original_resource.props = props
        return original_resource

    @staticmethod
    def _apply(backend: SNSBackend, arn: str, props: dict[str, Any]) -> None:
        for name, convert in _SUBSCRIPTION_ATTRIBUTES.items():
            if props.get(name) is not None:
                backend.set_subscription_attributes(arn, name, convert(props[name]))

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(self.props["TopicArn"]).unsubscribe(self.arn)


class SnsTopicPolicy(CfnResource, CloudFormationModel):
    """Sets the Policy attribute of each listed topic; removing it restores the topics' default policy."""

    def __init__(self, name: str, topics: list[str]) -> None:
        self.name = name
        self.topics = topics

    TYPE = "AWS::SNS::TopicPolicy"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SnsTopicPolicy:
        props = properties(cloudformation_json)
        policy = to_json(props["PolicyDocument"])
        for topic_arn in props["Topics"]:
            _backend(topic_arn).set_topic_attribute(topic_arn, "policy", policy)
        return cls(resource_name, list(props["Topics"]))

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SnsTopicPolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SnsTopicPolicy:
        updated = cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )
        _reset_policies(topic for topic in original_resource.topics if topic not in updated.topics)
        return updated

    def delete(self, account_id: str, region_name: str) -> None:
        _reset_policies(self.topics)


def _reset_policies(topic_arns: Iterable[str]) -> None:
    for topic_arn in topic_arns:
        with contextlib.suppress(SNSNotFoundError):
            topic: Topic = _backend(topic_arn).get_topic(topic_arn)
            topic._policy_json = topic._create_default_topic_policy(
                topic.sns_backend.region_name, topic.account_id, topic.name
            )
