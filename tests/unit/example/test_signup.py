"""The signup journey through the deployed handlers (signup worker, jobs worker), with moto behind them."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from asyncstack.runtime.events import EventEnvelope
from shared.events import USER_CONVERTED, USER_SIGNED_UP, UserConverted, UserSignedUp
from shared.signup import SummaryJob, UserJob
from tests.unit.conftest import REGION, AwsFaults, WorkQueueFixture, context, make_table, make_work_queue

pytestmark = pytest.mark.unit

GROUP = "jobs"


def fresh_handler(name: str) -> ModuleType:
    return importlib.reload(importlib.import_module(f"functions.{name}.handler"))


@pytest.fixture
def journey(
    work_queue: WorkQueueFixture, tables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> WorkQueueFixture:
    """The jobs queue, group, table and scheduler role the workers are configured with; returns the jobs queue."""
    jobs_queue = make_work_queue("jobs")
    boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=GROUP)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="scheduler", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    for name, value in {
        "JOBS_QUEUE_URL": jobs_queue.url,
        "JOBS_QUEUE_ARN": jobs_queue.arn,
        "JOBS_SCHEDULE_GROUP": GROUP,
        "JOBS_SCHEDULER_ROLE_ARN": role,
        "JOBS_DEAD_LETTER_ARN": jobs_queue.arn.replace("jobs", "jobs-dlq"),
        "JOBS_TABLE_NAME": make_table("jobs-table", "job_key", ttl="expires_at"),
        "JOB_TYPES": "job.signup_reminder,job.trial_expiry_warning,job.daily_summary",
    }.items():
        monkeypatch.setenv(name, value)
    return jobs_queue


def _user_event(event_type: str, data: dict[str, Any], occurred_at: datetime | None = None) -> str:
    envelope = EventEnvelope(
        event_id=f"{event_type}-{data['user_id']}", type=event_type, source="tests",
        occurred_at=occurred_at or datetime.now(UTC), data=data,
    )  # fmt: skip
    return envelope.model_dump_json()


def _outbox(tables: dict[str, str]) -> set[str]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=tables["OUTBOX_TABLE_NAME"])["Items"]
    return {item["message_id"]["S"] for item in items}


def _schedules() -> list[str]:
    return [
        s["Name"]
        for s in boto3.client("scheduler", region_name=REGION).list_schedules(GroupName=GROUP)["Schedules"]
    ]


SIGNUP = {"user_id": "u-1", "email": "ada@example.com", "name": "Ada"}


def test_a_signup_is_welcomed_now_and_gets_two_scheduled_follow_ups(
    work_queue: WorkQueueFixture, journey: WorkQueueFixture, tables: dict[str, str]
) -> None:
    # Given a user.signed_up event on the signup queue
    work_queue.send(_user_event(USER_SIGNED_UP, SIGNUP), type=USER_SIGNED_UP)
    # When the signup worker handles it
    response = fresh_handler("signup").handler(work_queue.receive_event(), context())
    # Then the welcome email is sent and the reminder (+24 h) and trial warning (+3 days) are scheduled
    assert response == {"batchItemFailures": []}
    assert _outbox(tables) == {"welcome#u-1"}
    assert len(_schedules()) == 2


def test_a_conversion_cancels_the_follow_ups(
    work_queue: WorkQueueFixture, journey: WorkQueueFixture, tables: dict[str, str]
) -> None:
    # Given a signed-up user with two scheduled follow-ups
    handler = fresh_handler("signup")
    work_queue.send(_user_event(USER_SIGNED_UP, SIGNUP), type=USER_SIGNED_UP)
    handler.handler(work_queue.receive_event(), context())
    # When user.converted arrives
    work_queue.send(_user_event(USER_CONVERTED, {"user_id": "u-1", "plan": "pro"}), type=USER_CONVERTED)
    response = handler.handler(work_queue.receive_event(), context())
    # Then both schedules are gone, and a reminder that still arrives does nothing
    assert response == {"batchItemFailures": []}
    assert _schedules() == []
    due = datetime.now(UTC) + timedelta(hours=24)
    late = EventEnvelope(
        event_id="u-1.signup-reminder", type="job.signup_reminder", source="asyncstack.jobs",
        occurred_at=datetime.now(UTC), data={**SIGNUP, "due_at": due.isoformat()},
    )  # fmt: skip
    journey.send(late.model_dump_json())
    assert fresh_handler("jobs").handler(journey.receive_event(), context()) == {"batchItemFailures": []}
    assert _outbox(tables) == {"welcome#u-1"}


def test_a_due_job_sends_its_email_once_however_often_it_is_delivered(
    work_queue: WorkQueueFixture, journey: WorkQueueFixture, tables: dict[str, str]
) -> None:
    # Given a signup whose reminder is due within seconds (it went through SQS with a delay)
    long_ago = datetime.now(UTC) - timedelta(hours=24)
    work_queue.send(_user_event(USER_SIGNED_UP, SIGNUP, occurred_at=long_ago), type=USER_SIGNED_UP)
    fresh_handler("signup").handler(work_queue.receive_event(), context())
    [reminder] = journey.receive_event()["Records"]
    # When the jobs worker gets the reminder twice (a schedule may fire twice)
    jobs = fresh_handler("jobs")
    first = jobs.handler({"Records": [reminder]}, context())
    second = jobs.handler({"Records": [reminder]}, context())
    # Then one reminder email exists
    assert first == second == {"batchItemFailures": []}
    assert _outbox(tables) == {"welcome#u-1", "job.signup_reminder#u-1"}


def test_a_reminder_whose_email_write_failed_is_sent_when_it_comes_back(
    work_queue: WorkQueueFixture, journey: WorkQueueFixture, tables: dict[str, str], aws_faults: AwsFaults
) -> None:
    """The defect this guards: a run that failed after claiming the job kept the claim, so the redelivery
    was acknowledged as done and the reminder was never sent."""
    # Given a due reminder, and an outbox whose next write is throttled beyond the SDK's retries
    long_ago = datetime.now(UTC) - timedelta(hours=24)
    work_queue.send(_user_event(USER_SIGNED_UP, SIGNUP, occurred_at=long_ago), type=USER_SIGNED_UP)
    fresh_handler("signup").handler(work_queue.receive_event(), context())
    [reminder] = journey.receive_event()["Records"]
    jobs = fresh_handler("jobs")
    aws_faults.fail("dynamodb", "PutItem", when=lambda p: p["TableName"] == tables["OUTBOX_TABLE_NAME"])
    # When the jobs worker runs it (the write fails), and then runs it again when SQS redelivers it
    first = jobs.handler({"Records": [reminder]}, context())
    second = jobs.handler({"Records": [reminder]}, context())
    # Then the first attempt is reported failed, and the redelivery sends the reminder
    assert aws_faults.injected == ["PutItem:ThrottlingException"]
    assert first == {"batchItemFailures": [{"itemIdentifier": reminder["messageId"]}]}
    assert second == {"batchItemFailures": []}
    assert _outbox(tables) == {"welcome#u-1", "job.signup_reminder#u-1"}


def test_a_conversion_handled_before_its_signup_leaves_no_follow_ups(
    work_queue: WorkQueueFixture, journey: WorkQueueFixture, tables: dict[str, str]
) -> None:
    """A signup event that was retried can arrive after the user already converted."""
    # Given user.converted handled first
    handler = fresh_handler("signup")
    work_queue.send(_user_event(USER_CONVERTED, {"user_id": "u-1", "plan": "pro"}), type=USER_CONVERTED)
    assert handler.handler(work_queue.receive_event(), context()) == {"batchItemFailures": []}
    # When the user's user.signed_up arrives afterwards, with the reminder due within SQS's reach
    long_ago = datetime.now(UTC) - timedelta(hours=23, minutes=55)
    work_queue.send(_user_event(USER_SIGNED_UP, SIGNUP, occurred_at=long_ago), type=USER_SIGNED_UP)
    assert handler.handler(work_queue.receive_event(), context()) == {"batchItemFailures": []}
    # Then the welcome email goes out, and no follow-up is scheduled on either path
    assert _outbox(tables) == {"welcome#u-1"}
    assert _schedules() == []
    assert journey.counts() == {"visible": 0, "in_flight": 0}
    delayed = journey.sqs.get_queue_attributes(
        QueueUrl=journey.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert delayed == "0"


def test_a_recurring_daily_summary_firing_runs_once(
    journey: WorkQueueFixture, tables: dict[str, str]
) -> None:
    # Given the body the recurring schedule sends, with the scheduler's time filled in
    body = json.dumps({
        "event_id": "DailySummary:2030-01-02T06:00:00Z", "type": "job.daily_summary", "source": "asyncstack.jobs",
        "occurred_at": "2030-01-02T06:00:00Z", "data": {"due_at": "2030-01-02T06:00:00Z"},
    })  # fmt: skip
    journey.send(body)
    journey.send(body)
    # When the jobs worker handles both deliveries
    response = fresh_handler("jobs").handler(journey.receive_event(), context())
    # Then one summary is written for that day
    assert response == {"batchItemFailures": []}
    assert _outbox(tables) == {"job.daily_summary#2030-01-02T06:00"}


@pytest.mark.parametrize(
    ("name", "model"),
    [("user-signed-up", UserSignedUp), ("user-converted", UserConverted), ("job-signup-reminder", UserJob),
     ("job-daily-summary", SummaryJob)],
)  # fmt: skip
def test_the_sample_events_are_valid(name: str, model: type, event_file) -> None:
    # Given a sample in events/ Then it is an envelope whose data its consumer accepts
    envelope = EventEnvelope.model_validate(event_file(f"{name}.json"))
    model.model_validate(envelope.data)
