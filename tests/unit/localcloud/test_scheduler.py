"""EventBridge Scheduler semantics reproduced by the local scheduler engine on moto's stored schedules."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from localcloud.clock import Clock
from localcloud.scheduler.engine import SchedulerEngine

pytestmark = pytest.mark.unit

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/scheduler"
T0 = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday


def client(service: str) -> Any:
    make: Any = boto3.client  # any service by name, as the engine's client factory is called
    return make(service, region_name=REGION)


@dataclass
class Local:
    """A clock pinned at T0 and an engine over moto's scheduler backend, logging into ``lines``."""

    clock: Clock
    engine: SchedulerEngine
    lines: list[str]

    def at(self, seconds: float) -> None:
        """Move the clock to T0 + seconds."""
        self.clock.advance((T0 + timedelta(seconds=seconds) - self.clock.now()).total_seconds())


def local_cloud(factory: Callable[[str], Any] = client, **options: Any) -> Local:
    clock = Clock(start=T0)
    lines: list[str] = []
    engine = SchedulerEngine(clock=clock, client=factory, log=lines.append, **options)
    return Local(clock, engine, lines)


@pytest.fixture
def local(aws: None) -> Local:
    return local_cloud()


def make_queue(name: str, **attributes: str) -> tuple[str, str]:
    url = client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def received(url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while (
        got := client("sqs")
        .receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=300,
        )
        .get("Messages", [])
    ):
        messages += got
    return messages


def schedule(name: str, expression: str, target: dict[str, Any], **options: Any) -> str:
    return client("scheduler").create_schedule(
        Name=name,
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"RoleArn": ROLE, **target},
        **options,
    )["ScheduleArn"]


def schedule_names() -> set[str]:
    return {s["Name"] for s in client("scheduler").list_schedules()["Schedules"]}


@pytest.mark.parametrize(("action", "kept"), [("DELETE", False), ("NONE", True)])
def test_one_time_schedule_fires_once_at_its_time(local: Local, action: str, kept: bool) -> None:
    """A one-time at() schedule invokes its target once, at its time; ActionAfterCompletion decides its fate."""
    # Given a queue and a one-time schedule ten minutes after T0
    url, arn = make_queue("reminders")
    schedule(
        "remind", "at(2030-01-01T00:10:00)", {"Arn": arn, "Input": '{"n": 1}'}, ActionAfterCompletion=action
    )
    assert local.engine.pending() == 1

    # When the clock reaches one second before the time, then one second after, and passes run again
    local.at(599)
    before = local.engine.fire_due()
    local.at(601)
    firings = local.engine.fire_due()
    local.at(7200)
    again = local.engine.fire_due() + local.engine.fire_due()

    # Then it fired exactly once, for its due time, and is deleted (DELETE) or kept but spent (NONE)
    assert before == [] and again == []
    assert [(f.name, f.due, f.attempt, f.outcome) for f in firings] == [
        ("remind", T0 + timedelta(minutes=10), 1, "delivered")
    ]
    assert [json.loads(m["Body"]) for m in received(url)] == [{"n": 1}]
    assert ("remind" in schedule_names()) is kept
    assert local.engine.pending() == 0


def test_next_due_is_the_earliest_firing_still_to_come(local: Local) -> None:
    """What a driver moving the clock jumps to: the next due time of any schedule, none once all fired."""
    # Given two one-time schedules and nothing else
    _, arn = make_queue("due")
    assert local.engine.next_due() is None
    schedule("later", "at(2030-01-03T00:00:00)", {"Arn": arn, "Input": "{}"})
    schedule("sooner", "at(2030-01-01T06:00:00)", {"Arn": arn, "Input": "{}"})
    # When the clock moves to each next due time and the engine fires
    seen = []
    while (due := local.engine.next_due()) is not None:
        seen.append(due)
        local.clock.advance((due - local.clock.now()).total_seconds())
        local.engine.fire_due()
    # Then it went to each due time in order, and nothing is left to come
    assert seen == [T0 + timedelta(hours=6), T0 + timedelta(days=2)]


def test_rate_schedule_fires_once_per_period_counted_from_creation(local: Local) -> None:
    """rate(5 minutes) invokes every five minutes after creation, and once per period missed by a clock jump."""
    # Given a rate schedule created at T0
    url, arn = make_queue("ticks")
    schedule("tick", "rate(5 minutes)", {"Arn": arn, "Input": '"<aws.scheduler.scheduled-time>"'})

    # When the clock passes 4 minutes, 5 minutes, 10 minutes, then jumps to 30 minutes
    local.at(240)
    early = local.engine.fire_due()
    local.at(301)
    first = local.engine.fire_due() + local.engine.fire_due()
    local.at(601)
    second = local.engine.fire_due()
    local.at(1801)
    jump = local.engine.fire_due()

    # Then nothing fired early, and each period fired exactly once, in order
    assert early == []
    assert [f.due for f in first + second + jump] == [T0 + timedelta(minutes=5 * k) for k in range(1, 7)]
    assert sorted(json.loads(m["Body"]) for m in received(url)) == [
        f"2030-01-01T00:{5 * k:02d}:00Z" for k in range(1, 7)
    ]
    assert local.engine.stats.fired == local.engine.stats.delivered == 6


def test_catch_up_after_a_long_jump_is_capped(aws: None) -> None:
    """A clock jump over many periods fires the latest few missed ones, not an unbounded burst."""
    # Given a rate(1 minute) schedule and an engine that catches up at most 3 due times
    local = local_cloud(catch_up_limit=3)
    _, arn = make_queue("burst")
    schedule("burst", "rate(1 minute)", {"Arn": arn})

    # When the clock jumps an hour
    local.at(3600 + 1)
    firings = local.engine.fire_due()

    # Then the three latest minutes fire, the 57 older ones are skipped and logged
    assert [f.due for f in firings] == [T0 + timedelta(minutes=m) for m in (58, 59, 60)]
    assert local.engine.stats.skipped == 57
    assert any("skipping 57" in line for line in local.lines)


def test_start_and_end_dates_bound_a_recurring_schedule(local: Local) -> None:
    """StartDate and EndDate bound a recurring schedule: rate periods count from StartDate, none after EndDate."""
    # Given an hourly schedule starting two hours after T0 and ending five hours after it
    _, arn = make_queue("bounded")
    schedule(
        "bounded",
        "rate(1 hour)",
        {"Arn": arn},
        StartDate=T0 + timedelta(hours=2),
        EndDate=T0 + timedelta(hours=5),
    )

    # When a day passes
    local.at(86400)
    firings = local.engine.fire_due()

    # Then only the periods inside the window fired, and nothing is left to fire
    assert [f.due for f in firings] == [T0 + timedelta(hours=h) for h in (3, 4, 5)]
    assert local.engine.pending() == 0


def test_cron_schedule_fires_at_its_local_time(local: Local) -> None:
    """cron() with ScheduleExpressionTimezone fires at that zone's wall-clock time (09:00 New York = 14:00 UTC)."""
    # Given a weekday 09:00 cron schedule in America/New_York (UTC-5 in January)
    url, arn = make_queue("morning")
    schedule(
        "morning",
        "cron(0 9 ? * MON-FRI *)",
        {"Arn": arn, "Input": "<aws.scheduler.scheduled-time>"},
        ScheduleExpressionTimezone="America/New_York",
    )

    # When the clock reaches 13:59:59 UTC, then 14:00:01 UTC
    local.at(14 * 3600 - 1)
    before = local.engine.fire_due()
    local.at(14 * 3600 + 1)
    firings = local.engine.fire_due()

    # Then it fired once, at 14:00 UTC
    assert before == []
    assert [f.due for f in firings] == [datetime(2030, 1, 1, 14, tzinfo=UTC)]
    assert [m["Body"] for m in received(url)] == ["2030-01-01T14:00:00Z"]


def test_disabled_schedule_never_fires(local: Local) -> None:
    """A DISABLED schedule does not invoke its target, and enabling it does not replay the times it missed."""
    # Given a disabled rate schedule and a disabled one-time schedule
    url, arn = make_queue("quiet")
    schedule("every-minute", "rate(1 minute)", {"Arn": arn}, State="DISABLED")
    schedule("once", "at(2030-01-01T00:05:00)", {"Arn": arn}, State="DISABLED")

    # When a day passes, then the rate schedule is enabled and a minute passes
    local.at(86400)
    disabled = local.engine.fire_due()
    pending = local.engine.pending()
    client("scheduler").update_schedule(
        Name="every-minute",
        ScheduleExpression="rate(1 minute)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"RoleArn": ROLE, "Arn": arn},
        State="ENABLED",
    )
    replayed = local.engine.fire_due()
    local.at(86400 + 61)
    enabled = local.engine.fire_due()

    # Then nothing fired while disabled, nothing was replayed, and the next minute fired once
    assert disabled == [] and replayed == [] and pending == 0
    assert [(f.name, f.due) for f in enabled] == [("every-minute", T0 + timedelta(days=1, minutes=1))]
    assert len(received(url)) == 1


def test_input_context_attributes_are_substituted(local: Local) -> None:
    """Target.Input gets Scheduler's context attributes: schedule ARN, scheduled time, execution id, attempt."""
    # Given a schedule whose input uses every context attribute
    url, arn = make_queue("context")
    body = {
        "schedule": "<aws.scheduler.schedule-arn>",
        "time": "<aws.scheduler.scheduled-time>",
        "execution": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
    }
    schedule_arn = schedule("ctx", "at(2030-01-01T01:00:00)", {"Arn": arn, "Input": json.dumps(body)})

    # When it fires
    local.at(3601)
    [firing] = local.engine.fire_due()

    # Then the delivered body carries the values of this invocation
    [message] = received(url)
    assert json.loads(message["Body"]) == {
        "schedule": schedule_arn,
        "time": "2030-01-01T01:00:00Z",
        "execution": firing.execution_id,
        "attempt": "1",
    }


def test_failing_target_is_retried_with_backoff_then_dead_lettered(aws: None) -> None:
    """A failing invocation is retried with exponential backoff up to MaximumRetryAttempts, then sent to the DLQ."""
    # Given a schedule whose target queue does not exist, two retries, a DLQ, and a 10 s backoff base
    local = local_cloud(retry_base_seconds=10)
    dlq_url, dlq_arn = make_queue("scheduler-dlq")
    missing = "arn:aws:sqs:us-east-1:123456789012:does-not-exist"
    schedule_arn = schedule(
        "doomed",
        "at(2030-01-01T00:01:00)",
        {
            "Arn": missing,
            "Input": '{"attempt": "<aws.scheduler.attempt-number>"}',
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": dlq_arn},
        },
    )

    # When the clock passes the due time, then steps just short of and just past each backoff (10 s, 20 s)
    outcomes: list[list[tuple[int, str]]] = []
    for seconds in (61, 70, 72, 91, 93):
        local.at(seconds)
        outcomes.append([(f.attempt, f.outcome) for f in local.engine.fire_due()])

    # Then attempts 2 and 3 wait for their backoff, and the third failure lands in the DLQ
    assert outcomes == [[(1, "retrying")], [], [(2, "retrying")], [], [(3, "dead-lettered")]]
    [letter] = received(dlq_url)
    assert json.loads(letter["Body"]) == {"attempt": "3"}
    attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["TARGET_ARN"] == missing
    assert attributes["SCHEDULE_ARN"] == schedule_arn
    assert attributes["SCHEDULED_TIME"] == "2030-01-01T00:01:00Z"
    assert attributes["ERROR_CODE"] and attributes["ERROR_MESSAGE"]
    stats = local.engine.stats
    assert (stats.fired, stats.failed_attempts, stats.dead_lettered, stats.delivered) == (1, 3, 1, 0)


def test_event_too_old_to_retry_is_dropped_without_a_dlq(aws: None) -> None:
    """Retries stop at MaximumEventAgeInSeconds; with no DeadLetterConfig the event is dropped and logged."""
    # Given a failing target, a 60 s maximum event age, no DLQ, and a 40 s backoff base
    local = local_cloud(retry_base_seconds=40)
    schedule(
        "stale",
        "at(2030-01-01T00:01:00)",
        {
            "Arn": "arn:aws:sqs:us-east-1:123456789012:nowhere",
            "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 60},
        },
    )

    # When it fires and its first retry (40 s later) fails too
    local.at(61)
    first = local.engine.fire_due()
    local.at(102)
    second = local.engine.fire_due()

    # Then the next retry (80 s later) would exceed the age limit: dropped, with one log line
    assert [(f.attempt, f.outcome) for f in first + second] == [(1, "retrying"), (2, "dropped")]
    assert second[0].error is not None and "MaximumEventAgeInSeconds" in second[0].error
    assert [line for line in local.lines if "dropped" in line] != []
    assert local.engine.stats.dropped == 1


def test_fifo_queue_target_gets_its_message_group(local: Local) -> None:
    """SqsParameters.MessageGroupId is used for FIFO queue targets, with a deduplication id per invocation."""
    # Given a FIFO queue without content-based deduplication and a schedule naming a message group
    url, arn = make_queue("jobs.fifo", FifoQueue="true")
    schedule("job", "at(2030-01-01T00:00:30)", {"Arn": arn, "SqsParameters": {"MessageGroupId": "tenant-7"}})

    # When it fires
    local.at(31)
    [firing] = local.engine.fire_due()

    # Then the message is in that group, deduplicated by the execution id
    [message] = received(url)
    assert firing.outcome == "delivered"
    assert message["Attributes"]["MessageGroupId"] == "tenant-7"
    assert message["Attributes"]["MessageDeduplicationId"] == firing.execution_id


def test_lambda_target_is_invoked_asynchronously(aws: None) -> None:
    """Lambda targets are invoked with InvocationType Event and the rendered input as payload."""
    # Given a function in moto and a client factory that records Lambda calls
    role = client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    function_arn = client("lambda").create_function(
        FunctionName="nightly",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
    )["FunctionArn"]
    calls: list[dict[str, Any]] = []

    class FakeLambda:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return {"StatusCode": 202}

    local = local_cloud(lambda service: FakeLambda() if service == "lambda" else client(service))
    schedule("nightly", "at(2030-01-01T00:00:10)", {"Arn": function_arn, "Input": '{"job": "nightly"}'})

    # When it fires
    local.at(11)
    firings = local.engine.fire_due()

    # Then the function was invoked once, asynchronously, with the input
    assert [f.outcome for f in firings] == ["delivered"]
    assert calls == [
        {"FunctionName": function_arn, "InvocationType": "Event", "Payload": b'{"job": "nightly"}'}
    ]


def test_sns_step_functions_and_event_bus_targets(local: Local) -> None:
    """Templated targets: SNS publish, Step Functions StartExecution (unique name) and PutEvents to a bus."""
    # Given an SNS topic, an event bus with a rule, both feeding queues, and a state machine
    sns_url, sns_queue = make_queue("from-sns")
    topic = client("sns").create_topic(Name="alerts")["TopicArn"]
    client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=sns_queue, Attributes={"RawMessageDelivery": "true"}
    )
    bus_url, bus_queue = make_queue("from-bus")
    bus = client("events").create_event_bus(Name="ops")["EventBusArn"]
    client("events").put_rule(
        Name="all", EventBusName="ops", EventPattern=json.dumps({"source": ["ops.timer"]})
    )
    client("events").put_targets(Rule="all", EventBusName="ops", Targets=[{"Id": "q", "Arn": bus_queue}])
    machine = client("stepfunctions").create_state_machine(
        name="report",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=ROLE,
    )["stateMachineArn"]
    due = "at(2030-01-01T00:00:05)"
    schedule("page", due, {"Arn": topic, "Input": '{"page": true}'})
    schedule("report", due, {"Arn": machine, "Input": '{"report": "daily"}'})
    schedule(
        "tick",
        due,
        {
            "Arn": bus,
            "Input": '{"tick": 1}',
            "EventBridgeParameters": {"Source": "ops.timer", "DetailType": "Timer Tick"},
        },
    )

    # When they fire
    local.at(6)
    firings = {f.name: f for f in local.engine.fire_due()}

    # Then each target received the input in its own shape
    assert {name: f.outcome for name, f in firings.items()} == dict.fromkeys(
        ("page", "report", "tick"), "delivered"
    )
    assert [json.loads(m["Body"]) for m in received(sns_url)] == [{"page": True}]
    [event] = [json.loads(m["Body"]) for m in received(bus_url)]
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "ops.timer",
        "Timer Tick",
        {"tick": 1},
    )
    executions = client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
    assert [e["name"] for e in executions] == [firings["report"].execution_id]


def test_a_bad_schedule_is_logged_once_and_skipped(local: Local) -> None:
    """One schedule the engine cannot evaluate does not stop the others from firing."""
    # Given a cron schedule using L (unsupported locally) and a good one-time schedule
    url, arn = make_queue("robust")
    schedule("last-day", "cron(0 0 L * ? *)", {"Arn": arn})
    schedule("fine", "at(2030-01-01T00:00:10)", {"Arn": arn})

    # When two passes run after the good one is due
    local.at(11)
    firings = local.engine.fire_due() + local.engine.fire_due()

    # Then the good one fired and the bad one was reported once
    assert [f.name for f in firings] == ["fine"]
    assert len([line for line in local.lines if "last-day" in line]) == 1
    assert len(received(url)) == 1


def test_background_thread_fires_when_the_clock_is_advanced(local: Local) -> None:
    """Schedules fire without anyone calling fire_due: the engine's thread wakes when the clock moves."""
    # Given a running engine and a schedule an hour away
    url, arn = make_queue("background")
    schedule("later", "at(2030-01-01T01:00:00)", {"Arn": arn})
    local.engine.start()
    try:
        # When the clock jumps past it
        local.at(3601)

        # Then the thread delivers it promptly
        deadline = time.monotonic() + 5
        while local.engine.stats.delivered == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        local.engine.close()
    assert len(received(url)) == 1
    assert local.engine.stats.delivered == 1


def test_targets_and_the_dlq_are_called_as_the_schedules_role(aws: None) -> None:
    """Scheduler calls the target, and sends to the DLQ, only as the schedule's execution role (Scheduler
    user guide, "Set up the execution role"); the engine's own client only looks queues up."""
    # Given an engine that makes its role clients through a recording factory
    made: list[tuple[str, str | None]] = []

    def role_client(service: str, role: str) -> Any:
        made.append((service, role))
        return client(service)

    local = local_cloud(role_client=role_client)
    target_url, target_arn = make_queue("role-target")
    schedule("as-role", "at(2030-01-01T00:01:00)", {"Arn": target_arn, "Input": "{}"})
    # When it fires
    local.at(61)
    assert [f.outcome for f in local.engine.fire_due()] == ["delivered"]
    # Then the message went out through a client of the schedule's role
    assert made == [("sqs", ROLE)] and len(received(target_url)) == 1
