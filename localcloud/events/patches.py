"""Where moto's EventBridge must behave as AWS does: rules deliver to every target type (``targets``)."""

from __future__ import annotations

from typing import Any


def apply() -> None:
    _eventbridge_targets()


def _eventbridge_targets() -> None:
    """moto's rules deliver only to SQS, logs and buses, ignore ``Input``/``InputPath``, leave string
    values unquoted in input transformers and omit the event's ``account``. EventBridge delivers to
    Lambda (asynchronously), SNS and Step Functions too, with the target's input."""
    from moto.events.models import Rule

    from localcloud.events.targets import TARGET_SERVICES, deliver, render_input

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        event = {"account": self.account_id, **original_event}
        if not self.event_pattern.matches_event(event):
            return
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in TARGET_SERVICES]
        for target in ours:
            deliver(self, target, render_input(target, event) if transform_input else event)
        rest = [t for t in self.targets if t not in ours]
        if rest:
            saved, self.targets = self.targets, rest
            try:
                original(self, event, transform_input)  # type: ignore[arg-type]
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
