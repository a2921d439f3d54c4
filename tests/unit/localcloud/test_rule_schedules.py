"""EventBridge rules with a schedule expression fire on the local clock, as EventBridge fires them."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from localcloud.clock import Clock
from localcloud.events import patches
from localcloud.events.schedules import RuleSchedules, due_times

patches.apply()

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)  # a Monday


def rule_to_queue(expression: str, *, state: str = "ENABLED", target: dict[str, Any] | None = None) -> str:
    """A scheduled rule whose target is a new queue; returns the queue's URL."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tick", ScheduleExpression=expression, State=state)
    events.put_targets(Rule="tick", Targets=[{"Id": "queue", "Arn": arn, **(target or {})}])
    return url


def received(url: str) -> list[Any]:
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def engine(clock: Clock) -> RuleSchedules:
    return RuleSchedules(clock=clock, lock=threading.RLock(), account_id="123456789012", region="us-east-1")


def test_a_rate_rule_fires_every_period_after_it_is_created(aws: None) -> None:
    # Given a rule firing every 2 minutes, to a queue, first seen at START
    url = rule_to_queue("rate(2 minutes)")
    clock = Clock(start=START)
    rules = engine(clock)
    assert rules.fire_due() == 0
    # When the clock moves a minute, then two more
    clock.advance(timedelta(minutes=1))
    assert rules.fire_due() == 0
    clock.advance(timedelta(minutes=1, seconds=1))
    # Then it fired once, with EventBridge's scheduled event at the due time
    assert rules.fire_due() == 1
    (event,) = received(url)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-03-02T09:02:30Z"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/tick"]
    assert event["detail"] == {}


def test_a_cron_rule_fires_at_its_utc_minutes_with_the_targets_input(aws: None) -> None:
    # Given a weekday 09:05 UTC rule whose target sends a constant input
    url = rule_to_queue("cron(5 9 ? * MON-FRI *)", target={"Input": json.dumps({"job": "digest"})})
    clock = Clock(start=START)
    rules = engine(clock)
    rules.fire_due()
    # When the clock passes 09:05
    clock.advance(timedelta(minutes=5))
    # Then the target got its input once
    assert rules.fire_due() == 1
    assert received(url) == [{"job": "digest"}]
    assert rules.fire_due() == 0


def test_a_disabled_rule_does_not_fire_nor_replay_what_it_missed(aws: None) -> None:
    # Given a disabled rule every minute
    url = rule_to_queue("rate(1 minute)", state="DISABLED")
    clock = Clock(start=START)
    rules = engine(clock)
    rules.fire_due()
    clock.advance(timedelta(minutes=5))
    assert rules.fire_due() == 0
    # When it is enabled and the clock moves past its next period
    boto3.client("events").enable_rule(Name="tick")
    clock.advance(timedelta(minutes=1))
    # Then only the due time after enabling fires
    assert rules.fire_due() == 1
    assert len(received(url)) == 1


def test_an_expression_that_is_neither_rate_nor_cron_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported schedule expression"):
        next(due_times("at(2026-03-02T09:00:00)", START, START))


def test_a_rule_first_seen_after_the_clock_moved_counts_from_its_creation(aws: None) -> None:
    """A clock moved right after a deploy, before the engine's next pass, still reaches the rule's due times."""
    # Given a rule created at START, never looked at before the clock moves past its first period
    clock = Clock(start=START)
    before = clock.now()
    url = rule_to_queue("rate(1 minute)")
    after = clock.now()  # the clock runs in real time: creation lies between the two readings
    clock.advance(timedelta(minutes=1, seconds=5))
    # When the engine makes its first pass
    # Then the due time a minute after the rule's creation fires, in whole seconds
    assert engine(clock).fire_due() == 1
    (event,) = received(url)
    fired = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    created = fired - timedelta(minutes=1)
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)


def test_a_target_the_local_cloud_does_not_deliver_to_does_not_fail_put_events(aws: None) -> None:
    """PutEvents succeeds whatever becomes of each target's delivery (EventBridge delivers asynchronously):
    a rule with a Firehose target and a queue target still gets the event to the queue."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="fan", EventPattern=json.dumps({"source": ["app"]}))
    events.put_targets(Rule="fan", Targets=[
        {"Id": "firehose", "Arn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/archive"},
        {"Id": "queue", "Arn": arn},
    ])  # fmt: skip
    answer = events.put_events(Entries=[{"Source": "app", "DetailType": "changed", "Detail": "{}"}])
    assert answer["FailedEntryCount"] == 0
    (event,) = received(url)
    assert event["source"] == "app"
