"""Where moto's SNS must behave as AWS does: the notification a subscribed function receives."""

from __future__ import annotations

import json
from typing import Any


def apply() -> None:
    _sns_events_for_lambda()


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
