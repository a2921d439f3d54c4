"""The signup journey and its delayed jobs, deployed with the CDK CLI and driven on the local clock:
a welcome email at once, a reminder after a day and a trial warning after three (EventBridge
Scheduler), both cancelled on conversion, a recurring daily summary, short delays through SQS, and
a target that keeps failing ending in the schedules' dead-letter queue.

The local clock drives the scheduler, SQS and the deployed functions: a function that computes a
delay from "now" reads the same now as the test."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asyncstack.runtime.jobs import schedule_name_for
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

TIMEOUT = 60
# A due job runs within a second or two of its delivery (a cold start included); shorter than TIMEOUT
# so that the known failure below (expected to time out) does not make the file slow.
JOB_TIMEOUT = 20
REMINDER = "job.signup_reminder"
TRIAL_WARNING = "job.trial_expiry_warning"
DAILY_SUMMARY = "job.daily_summary"
DAILY_CRON = "cron(0 6 * * ? *)"

# -- helpers ---------------------------------------------------------------------------------------


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def _keys(user_id: str) -> dict[str, str]:
    return {REMINDER: f"{user_id}.signup-reminder", TRIAL_WARNING: f"{user_id}.trial-expiry"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _at(moment: datetime) -> str:
    return f"at({moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S})"


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _publish(cloud: LocalCloud, event_type: str, data: dict[str, Any], occurred_at: datetime) -> None:
    """A user event on the users topic, with the ``type`` attribute its subscription filters on."""
    envelope = {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "type": event_type,
        "source": "tests.e2e",
        "occurred_at": _iso(occurred_at),
        "data": data,
    }
    cloud.client("sns").publish(
        TopicArn=cloud.stack_outputs()["UsersTopicArn"],
        Message=json.dumps(envelope),
        MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
    )


def _sign_up(cloud: LocalCloud, user_id: str, occurred_at: datetime | None = None) -> datetime:
    """Publish user.signed_up (by default as of the local clock, whole seconds); its occurred_at."""
    occurred_at = occurred_at or cloud.clock.now().replace(microsecond=0)
    data = {"user_id": user_id, "email": f"{user_id}@example.com", "name": f"Name {user_id}"}
    _publish(cloud, "user.signed_up", data, occurred_at)
    return occurred_at


def _item(cloud: LocalCloud, table_output: str, key_name: str, key: str) -> dict[str, Any] | None:
    table = cloud.stack_outputs()[table_output]
    got = cloud.client("dynamodb").get_item(TableName=table, Key={key_name: {"S": key}}, ConsistentRead=True)
    item: dict[str, Any] | None = got.get("Item")
    return item


def _email(cloud: LocalCloud, message_id: str) -> dict[str, Any] | None:
    return _item(cloud, "OutboxTableName", "message_id", message_id)


def _job(cloud: LocalCloud, key: str) -> dict[str, Any] | None:
    return _item(cloud, "JobsTableName", "job_key", key)


def _status(cloud: LocalCloud, key: str) -> str | None:
    job = _job(cloud, key)
    return job["status"]["S"] if job else None


def _schedule_names(cloud: LocalCloud) -> set[str]:
    group = cloud.stack_outputs()["JobsScheduleGroupName"]
    pages = cloud.client("scheduler").get_paginator("list_schedules").paginate(GroupName=group)
    return {schedule["Name"] for page in pages for schedule in page["Schedules"]}


def _wait_for_jobs(cloud: LocalCloud, user_id: str, status: str) -> None:
    keys = _keys(user_id).values()
    cloud.wait_until(
        lambda: all(_status(cloud, key) == status for key in keys), TIMEOUT, f"{user_id}'s jobs {status}"
    )


def _settle(cloud: LocalCloud) -> None:
    """One scheduler pass as of the clock (everything due is handed to its target), then wait until
    every queue, delayed message and invocation it caused is done: absences are meaningful after it."""
    cloud.scheduler.fire_due()
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")


# -- tests -----------------------------------------------------------------------------------------


def test_a_signup_sends_the_welcome_now_and_schedules_two_follow_ups(cloud: LocalCloud) -> None:
    """user.signed_up: welcome email at once, a reminder (+24 h) and a trial warning (+3 days) scheduled."""
    # Given a new user
    user_id = _user()
    # When the signup event is published (the local clock is not moved)
    signed_up = _sign_up(cloud, user_id)
    # Then the welcome email is in the outbox
    cloud.wait_until(lambda: _email(cloud, f"welcome#{user_id}") is not None, TIMEOUT, "the welcome email")
    assert _email(cloud, f"welcome#{user_id}")["to"]["S"] == f"{user_id}@example.com"  # type: ignore[index]
    # And the jobs table holds two pending jobs, both going through the scheduler
    _wait_for_jobs(cloud, user_id, "pending")
    keys = _keys(user_id)
    assert {_job(cloud, key)["via"]["S"] for key in keys.values()} == {"scheduler"}  # type: ignore[index]
    # And the schedule group holds one one-time schedule per job, due at signup + 24 h and + 3 days
    names = {job_type: schedule_name_for(key) for job_type, key in keys.items()}
    assert set(names.values()) <= _schedule_names(cloud)
    group = cloud.stack_outputs()["JobsScheduleGroupName"]
    expressions = {
        job_type: cloud.client("scheduler").get_schedule(Name=name, GroupName=group)["ScheduleExpression"]
        for job_type, name in names.items()
    }
    assert expressions == {
        REMINDER: _at(signed_up + timedelta(hours=24)),
        TRIAL_WARNING: _at(signed_up + timedelta(days=3)),
    }
    # And nothing has been sent for them yet
    _settle(cloud)
    assert _email(cloud, f"{REMINDER}#{user_id}") is None
    assert _email(cloud, f"{TRIAL_WARNING}#{user_id}") is None


def test_the_reminder_fires_once_after_a_day_and_never_again(cloud: LocalCloud) -> None:
    """The 24 h reminder is sent when due, its schedule deletes itself, and a later day sends nothing more."""
    # Given a user who signed up now, with both follow-ups scheduled
    user_id = _user()
    _sign_up(cloud, user_id)
    _wait_for_jobs(cloud, user_id, "pending")
    key = _keys(user_id)[REMINDER]
    schedule = schedule_name_for(key)
    assert schedule in _schedule_names(cloud)
    # When the local clock passes the reminder's due time
    cloud.clock.advance(timedelta(hours=24, minutes=1))
    # Then the reminder email is sent, the job is done and its one-time schedule is gone
    message_id = f"{REMINDER}#{user_id}"
    cloud.wait_until(lambda: _email(cloud, message_id) is not None, JOB_TIMEOUT, "the reminder email")
    cloud.wait_until(lambda: _status(cloud, key) == "done", TIMEOUT, "the reminder job done")
    cloud.wait_until(lambda: schedule not in _schedule_names(cloud), TIMEOUT, "the schedule's deletion")
    sent = _email(cloud, message_id)
    completed = _job(cloud, key)
    # When another day passes
    cloud.clock.advance(timedelta(hours=24))
    _settle(cloud)
    # Then nothing ran it again: the same single email and the same completion, no schedule left
    assert _email(cloud, message_id) == sent
    assert _job(cloud, key) == completed
    assert schedule not in _schedule_names(cloud)
    # And the trial warning (due after 3 days) is still pending, its schedule waiting
    assert _status(cloud, _keys(user_id)[TRIAL_WARNING]) == "pending"
    assert _email(cloud, f"{TRIAL_WARNING}#{user_id}") is None


def test_a_conversion_cancels_both_follow_ups(cloud: LocalCloud) -> None:
    """user.converted cancels the reminder and the trial warning: schedules deleted, nothing ever sent."""
    # Given two users signed up now, with their follow-ups scheduled
    converted, control = _user(), _user()
    for user_id in (converted, control):
        _sign_up(cloud, user_id)
    for user_id in (converted, control):
        _wait_for_jobs(cloud, user_id, "pending")
    # When one of them converts
    _publish(cloud, "user.converted", {"user_id": converted, "plan": "pro"}, cloud.clock.now())
    # Then that user's jobs are cancelled and their schedules deleted
    _wait_for_jobs(cloud, converted, "cancelled")
    names = {schedule_name_for(key) for key in _keys(converted).values()}
    cloud.wait_until(lambda: not names & _schedule_names(cloud), TIMEOUT, "the cancelled schedules' deletion")
    # When four days pass on the local clock
    cloud.clock.advance(timedelta(days=4))
    # Then the other user gets both follow-ups (the scheduler did fire what was due)
    for job_type in (REMINDER, TRIAL_WARNING):
        cloud.wait_until(
            lambda job_type=job_type: _email(cloud, f"{job_type}#{control}") is not None,
            JOB_TIMEOUT,
            f"the control user's {job_type} email",
        )
    _settle(cloud)
    # And the converted user gets neither, and the jobs stay cancelled
    assert _email(cloud, f"{REMINDER}#{converted}") is None
    assert _email(cloud, f"{TRIAL_WARNING}#{converted}") is None
    assert {_status(cloud, key) for key in _keys(converted).values()} == {"cancelled"}


def test_a_failing_target_lands_in_the_schedule_dead_letter_queue(cloud: LocalCloud) -> None:
    """A schedule whose target keeps failing is dead-lettered after its retries, with Scheduler's attributes."""
    # Given a one-time schedule in the jobs group, due in a minute, targeting a queue that does not exist
    outputs = cloud.stack_outputs()
    sqs = cloud.client("sqs")
    dlq_url = outputs["JobsScheduleDeadLetterQueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    missing_queue = f"{dlq_arn.rsplit(':', 1)[0]}:no-such-queue-{uuid.uuid4().hex[:8]}"
    [role_arn] = [
        role["Arn"]
        for role in cloud.client("iam").list_roles()["Roles"]
        if "JobsSchedulerRole" in role["RoleName"] and "Webhooks" not in role["RoleName"]
    ]
    name = f"test-dlq-{uuid.uuid4().hex[:12]}"
    group = outputs["JobsScheduleGroupName"]
    due = (cloud.clock.now() + timedelta(minutes=1)).replace(microsecond=0)
    cloud.client("scheduler").create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression=_at(due),
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": missing_queue,
            "RoleArn": role_arn,
            "Input": json.dumps({"marker": name, "at": "<aws.scheduler.scheduled-time>"}),
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": dlq_arn},
        },
    )
    before = cloud.scheduler.stats.failed_attempts
    # When the clock passes the due time, and then the retries' backoff (1 s, then 2 s on the clock)
    cloud.clock.advance(90)
    for failed in (1, 2):
        cloud.wait_until(
            lambda failed=failed: cloud.scheduler.stats.failed_attempts >= before + failed,
            TIMEOUT,
            f"failed attempt {failed}",
        )
        cloud.clock.advance(5)
    # Then the event is in the schedules' dead-letter queue, with the error and retry attributes
    found: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        got = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        )
        found[:] = [m for m in got.get("Messages", []) if name in m["Body"]]
        return bool(found)

    cloud.wait_until(dead_lettered, TIMEOUT, "the dead-lettered event")
    [message] = found
    assert json.loads(message["Body"]) == {"marker": name, "at": _stamp(due)}
    attributes = {key: value["StringValue"] for key, value in message["MessageAttributes"].items()}
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["TARGET_ARN"] == missing_queue
    assert attributes["SCHEDULE_ARN"].endswith(f":schedule/{group}/{name}")
    assert attributes["SCHEDULED_TIME"] == _stamp(due)
    assert attributes["ERROR_CODE"] not in ("", "-")
    assert attributes["ERROR_MESSAGE"] not in ("", "-")
    assert cloud.scheduler.stats.failed_attempts - before == 3
    # And the one-time schedule deleted itself after its last attempt
    assert name not in _schedule_names(cloud)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])


def test_the_daily_summary_fires_once_each_day(cloud: LocalCloud) -> None:
    """The deployed cron(0 6 * * ? *) schedule sends one summary per day, each firing run exactly once."""
    # Given the stack's recurring daily summary schedule (a 15-minute flexible window)
    group = cloud.stack_outputs()["JobsScheduleGroupName"]
    scheduler = cloud.client("scheduler")
    recurring = [
        schedule
        for name in _schedule_names(cloud)
        if not name.startswith("job-")
        and (schedule := scheduler.get_schedule(Name=name, GroupName=group))["ScheduleExpression"]
        == DAILY_CRON
    ]
    [daily] = recurring
    assert daily["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    now = cloud.clock.now()
    first = now.replace(hour=6, minute=0, second=0, microsecond=0)
    if first <= now:
        first += timedelta(days=1)
    completions = {}
    for day in (first, first + timedelta(days=1)):
        # When the local clock passes the day's 06:00 UTC (the local scheduler fires at the window's start)
        cloud.clock.advance(day + timedelta(seconds=30) - cloud.clock.now())
        # Then that day's summary email is sent and its firing's job is done
        message_id = f"{DAILY_SUMMARY}#{day:%Y-%m-%dT%H:%M}"
        cloud.wait_until(
            lambda m=message_id: _email(cloud, m) is not None, JOB_TIMEOUT, f"the summary {message_id}"
        )
        assert _email(cloud, message_id)["subject"]["S"] == f"Daily summary for {day:%Y-%m-%d}"  # type: ignore[index]
        key = f"DailySummary:{_stamp(day)}"
        cloud.wait_until(lambda k=key: _status(cloud, k) == "done", TIMEOUT, f"the job {key} done")
        completions[key] = _job(cloud, key)
    # And after everything due has run, each firing was completed once (no second run changed it)
    _settle(cloud)
    assert {key: _job(cloud, key) for key in completions} == completions
    # And the recurring schedule is still there for the next day
    assert daily["Name"] in _schedule_names(cloud)


def test_a_job_due_within_fifteen_minutes_goes_through_an_sqs_delay(cloud: LocalCloud) -> None:
    """A reminder due in a few seconds is an SQS message with DelaySeconds, delivered after the delay."""
    # Given a signup that happened 23:59:57 ago on the local clock, so its reminder is due in about 3 s
    user_id = _user()
    occurred_at = cloud.clock.now().replace(microsecond=0) - timedelta(hours=23, minutes=59, seconds=57)
    # When it is published
    _sign_up(cloud, user_id, occurred_at)
    # Then the reminder job goes through SQS (no schedule), due 24 h after the signup
    key = _keys(user_id)[REMINDER]
    cloud.wait_until(lambda: _job(cloud, key) is not None, TIMEOUT, "the reminder job")
    job = _job(cloud, key)
    assert job is not None
    assert job["via"]["S"] == "sqs"
    assert "schedule_name" not in job
    assert schedule_name_for(key) not in _schedule_names(cloud)
    due = datetime.fromisoformat(job["due_at"]["S"])
    assert due == occurred_at + timedelta(hours=24)
    # And the email is sent once the delay has passed, not before the due time
    message_id = f"{REMINDER}#{user_id}"
    cloud.wait_until(lambda: _email(cloud, message_id) is not None, JOB_TIMEOUT, "the delayed reminder email")
    cloud.wait_until(lambda: _status(cloud, key) == "done", TIMEOUT, "the reminder job done")
    sent_at = datetime.fromisoformat(_email(cloud, message_id)["sent_at"]["S"])  # type: ignore[index]
    assert sent_at >= due
