"""Where moto's EventBridge must behave as AWS does: rules deliver to every target type (``targets``)."""

from __future__ import annotations

from typing import Any


def apply() -> None:
    _eventbridge_targets()
    _rules_know_when_they_were_created()


def _rules_know_when_they_were_created() -> None:
    """A scheduled rule's rate() counts from its creation: rules are stamped (real time) when created,
    so a clock moved right after a deploy still finds the rule's due times (``events/schedules.py``)."""
    import time

    from moto.events.models import EventsBackend

    from localcloud.events.schedules import CREATED_AT

    put_rule = EventsBackend.put_rule

    def put_and_stamp(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        rule = put_rule(self, name, *args, **kwargs)
        if not hasattr(rule, CREATED_AT):
            setattr(rule, CREATED_AT, time.time())
        return rule

    EventsBackend.put_rule = put_and_stamp  # type: ignore[method-assign]


MOTO_TARGET_SERVICES = frozenset({"logs", "events"})  # log groups, buses and archives: moto delivers these
_reported: set[tuple[str, str]] = set()


def _not_delivered(rule: Any, target: dict[str, Any]) -> None:
    """A target of a kind the local cloud does not deliver to (Firehose, Kinesis, ECS, ...): said once
    per rule and target; moto failed the whole PutEvents call instead."""
    key = (rule.arn, target["Arn"])
    if key not in _reported:
        _reported.add(key)
        print(f"[localcloud] events: rule {rule.name} target {target['Arn']} is not delivered locally")


def _eventbridge_targets() -> None:
    """moto's rules deliver only to SQS, logs and buses, ignore ``Input``/``InputPath``, leave string
    values unquoted in input transformers and omit the event's ``account``. EventBridge delivers to
    Lambda (asynchronously), SNS and Step Functions too, with the target's input. A target of any
    other kind fails moto's PutEvents; it is skipped here, so the call and the other targets succeed."""
    from moto.events.models import Rule

    from localcloud.events.targets import TARGET_SERVICES, deliver, render_input

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        event = {"account": self.account_id, **original_event}
        if self.state != "ENABLED" or not self.event_pattern.matches_event(event):
            return
        rest = []  # for moto to deliver
        for target in self.targets:
            service = target["Arn"].split(":")[2]
            if service in TARGET_SERVICES:
                deliver(self, target, render_input(target, event) if transform_input else event)
            elif service in MOTO_TARGET_SERVICES:
                rest.append(target)
            else:  # PutEvents still succeeds, as on AWS
                _not_delivered(self, target)
        if rest:
            saved, self.targets = self.targets, rest
            try:
                original(self, event, transform_input)  # type: ignore[arg-type]
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
