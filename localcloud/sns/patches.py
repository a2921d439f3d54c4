"""Where moto's SNS must behave as AWS does: the notification a subscribed function receives, and
deliveries to queues and functions only where their policy lets the topic send."""

from __future__ import annotations

import json
from typing import Any


def apply() -> None:
    _sns_events_for_lambda()
    _deliveries_need_the_endpoints_permission()


_DELIVERY_ACTIONS = {"sqs": "sqs:SendMessage", "lambda": "lambda:InvokeFunction"}


def _deliveries_need_the_endpoints_permission() -> None:
    """SNS delivers to a queue or a function as ``sns.amazonaws.com`` for the topic: the queue policy or
    the function's permissions must allow it (``aws:SourceArn``: the topic). A refused delivery goes
    to the subscription's dead-letter queue (its ``RedrivePolicy``; that queue's policy must let the
    topic send too), or is dropped and logged, as SNS does once its retries are spent."""
    from moto.sns.models import Subscription

    from localcloud.iam.enforcement import service_may

    deliver = Subscription.publish

    def publish(self: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:  # fmt: skip
        action = _DELIVERY_ACTIONS.get(self.protocol)
        matcher = self._filter_policy_matcher
        if (
            action is not None
            and (matcher is None or matcher.matches(message_attributes, message))
            and not service_may("sns", "sns.amazonaws.com", action, self.endpoint, self.topic.arn)
        ):
            dead_letters = json.loads(self.attributes.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
            if not dead_letters or not service_may(
                "sns", "sns.amazonaws.com", "sqs:SendMessage", dead_letters, self.topic.arn
            ):
                return None
            saved = self.protocol, self.endpoint
            self.protocol, self.endpoint = "sqs", dead_letters  # moto's lock is held: no one sees the swap
            try:
                return deliver(self, message, message_id, subject, message_attributes, *args, **kwargs)
            finally:
                self.protocol, self.endpoint = saved
        return deliver(self, message, message_id, subject, message_attributes, *args, **kwargs)

    Subscription.publish = publish  # type: ignore[method-assign]


def _sns_events_for_lambda() -> None:
    """moto sends subscribed functions a canned SNS event (topic ``arn:aws:sns:EXAMPLE``, fixed
    message id, made-up attributes); SNS sends the real notification, asynchronously."""
    from moto.awslambda.models import lambda_backends
    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.sns.models import Subscription

    original = Subscription.publish

    def publish(self: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:  # fmt: skip
        if self.protocol != "lambda":
            return original(self, message, message_id, subject, message_attributes, *args, **kwargs)
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            message_attributes, message
        ):
            return None
        if kwargs.get("message_structure", args[2] if len(args) > 2 else None) == "json":
            message = self._parse_message_structure(message, self.protocol)
        notification = {
            "Type": "Notification", "MessageId": message_id, "TopicArn": self.topic.arn, "Subject": subject,
            "Message": message, "Timestamp": iso_8601_datetime_with_milliseconds(), "SignatureVersion": "1",
            "Signature": "local", "SigningCertUrl": "", "UnsubscribeUrl": "",
            "MessageAttributes": {name: {"Type": v["Type"], "Value": v["Value"]} for name, v in (message_attributes or {}).items()},
        }  # fmt: skip
        event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": self.arn, "Sns": notification}]}  # fmt: skip
        region = self.endpoint.split(":")[3]
        function = lambda_backends[self.account_id][region].get_function(self.endpoint)
        function.invoke(json.dumps(event), {}, {})
        return None

    Subscription.publish = publish  # type: ignore[method-assign]
