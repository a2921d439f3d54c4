"""Unit tests for the delayed-jobs API (asyncstack/runtime/jobs/) on moto: SQS, EventBridge Scheduler, DynamoDB."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError

from asyncstack.runtime import jobs
from asyncstack.runtime.errors import MalformedJsonError, SchemaInvalidError
from asyncstack.runtime.jobs import (
    MAX_SQS_DELAY_SECONDS,
    CancelOutcome,
    InvalidJobKeyError,
    JobBusyError,
    JobConfigError,
    JobMessage,
    JobScheduler,
    JobStatus,
    JobTimingError,
    NaiveDatetimeError,
    PastDueError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    UnknownJobTypeError,
    cancel_job,
    run_once,
    schedule_job,
    schedule_name_for,
)
from tests.unit.conftest import REGION, WorkQueueFixture, make_work_queue

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ROLE_ARN = "arn:aws:iam::123456789012:role/jobs-scheduler"
GROUP = "jobs"
TABLE = "jobs"
JOB_TYPES = frozenset({"send_reminder", "expire_cart"})


def _client(service: str) -> Any:
    make: Any = boto3.client  # any service by name; there are no scheduler stubs
    return make(service, region_name=REGION)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    """Frozen time, so delays and schedule expressions are exact."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def queue(aws: None) -> WorkQueueFixture:
    return make_work_queue("jobs")


@pytest.fixture
def scheduler(aws: None, clock: time_machine.Traveller, queue: WorkQueueFixture) -> JobScheduler:
    """A JobScheduler on a fresh jobs queue, DLQ, TTL'd jobs table and schedule group."""
    dynamodb = _client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "job_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    _client("scheduler").create_schedule_group(Name=GROUP)
    dlq_arn = _client("sqs").get_queue_attributes(QueueUrl=queue.dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return JobScheduler(
        queue_url=queue.url,
        queue_arn=queue.arn,
        schedule_group=GROUP,
        role_arn=ROLE_ARN,
        dead_letter_arn=dlq_arn,
        jobs_table=TABLE,
        job_types=JOB_TYPES,
    )


def delayed_count(queue: WorkQueueFixture) -> int:
    attributes = _client("sqs").get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def receive(queue: WorkQueueFixture) -> list[dict[str, Any]]:
    return (
        _client("sqs")
        .receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def schedules() -> list[dict[str, Any]]:
    return _client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]


def items() -> list[dict[str, Any]]:
    return _client("dynamodb").scan(TableName=TABLE)["Items"]


def item(key: str) -> dict[str, Any] | None:
    return _client("dynamodb").get_item(TableName=TABLE, Key={"job_key": {"S": key}}).get("Item")


# -- the short path: SQS DelaySeconds ----------------------------------------------------------


def test_short_delay_goes_to_sqs_with_the_delay(
    scheduler: JobScheduler, queue: WorkQueueFixture, clock: time_machine.Traveller
) -> None:
    """A job due within 15 minutes is a delayed SQS message, invisible until due."""
    # Given a job due in 5 minutes
    # When it is scheduled
    job = schedule_job(
        "send_reminder",
        {"order_id": "o-1"},
        key="remind:o-1",
        delay=timedelta(minutes=5),
        scheduler=scheduler,
    )

    # Then it is one delayed message, no schedule, and a pending item
    assert (job.via, job.created, job.schedule_name, job.status) == ("sqs", True, None, JobStatus.PENDING)
    assert job.due_at == T0 + timedelta(minutes=5)
    assert delayed_count(queue) == 1
    assert receive(queue) == []
    assert schedules() == []
    stored = item("remind:o-1")
    assert stored is not None
    assert stored["status"] == {"S": "pending"}
    assert stored["via"] == {"S": "sqs"}
    assert "schedule_name" not in stored
    assert stored["expires_at"] == {"N": str(int((T0 + timedelta(minutes=5, days=7)).timestamp()))}

    # When time reaches the due time
    clock.move_to(T0 + timedelta(minutes=5, seconds=1))
    messages = receive(queue)

    # Then the job body arrives with its attributes
    assert len(messages) == 1
    message = JobMessage.parse(messages[0]["Body"])
    assert message.job_key == "remind:o-1"
    assert message.job_type == "send_reminder"
    assert message.payload == {"order_id": "o-1"}
    assert message.due_at == T0 + timedelta(minutes=5)
    assert message.scheduled_at == T0
    assert messages[0]["MessageAttributes"]["job-key"]["StringValue"] == "remind:o-1"
    assert messages[0]["MessageAttributes"]["job-type"]["StringValue"] == "send_reminder"


def test_short_delay_rounds_up_to_whole_seconds(scheduler: JobScheduler) -> None:
    """DelaySeconds is an integer: round up so a job never runs early."""
    # Given an SQS client that records what it is asked to send
    sent: list[dict[str, Any]] = []

    class RecordingSqs:
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            sent.append(kwargs)
            return {"MessageId": "m-1"}

    recording: Any = RecordingSqs()
    recorded = JobScheduler(**{**vars(scheduler), "sqs_client": recording})

    # When a job is due in 10.2 seconds
    schedule_job("expire_cart", {}, key="cart:1", at=T0 + timedelta(seconds=10.2), scheduler=recorded)

    # Then it is delayed by 11 seconds
    assert sent[0]["DelaySeconds"] == 11
    assert sent[0]["QueueUrl"] == scheduler.queue_url


def test_due_just_now_is_sent_without_delay(scheduler: JobScheduler, queue: WorkQueueFixture) -> None:
    """Half a second in the past is clock skew, not a mistake: the job runs now."""
    # Given a due time within the 1 s tolerance
    # When it is scheduled
    job = schedule_job("expire_cart", {}, key="cart:2", at=T0 - timedelta(seconds=0.5), scheduler=scheduler)

    # Then the message is visible at once
    assert job.via == "sqs"
    assert len(receive(queue)) == 1


# -- the long path: EventBridge Scheduler ------------------------------------------------------


def test_long_delay_creates_a_one_time_schedule(scheduler: JobScheduler, queue: WorkQueueFixture) -> None:
    """A job due later than 15 minutes is a self-deleting one-time schedule targeting the jobs queue."""
    # Given a job due in two days, at a time with microseconds
    due = T0 + timedelta(days=2, hours=3, seconds=4, microseconds=500)

    # When it is scheduled
    job = schedule_job("send_reminder", {"n": 1}, key="remind:o-2", at=due, scheduler=scheduler)

    # Then the schedule has the exact expression (rounded up to the second), target, retries and DLQ
    assert (job.via, job.created) == ("scheduler", True)
    assert job.schedule_name == schedule_name_for("remind:o-2")
    got = _client("scheduler").get_schedule(Name=job.schedule_name, GroupName=GROUP)
    assert got["ScheduleExpression"] == "at(2030-01-03T15:00:05)"
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert got["ActionAfterCompletion"] == "DELETE"
    target = got["Target"]
    assert target["Arn"] == queue.arn
    assert target["RoleArn"] == ROLE_ARN
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert target["DeadLetterConfig"] == {"Arn": scheduler.dead_letter_arn}
    body = json.loads(target["Input"])
    assert body == {
        "event_id": "remind:o-2",
        "type": "send_reminder",
        "source": "asyncstack.jobs",
        "occurred_at": "2030-01-01T12:00:00Z",
        "data": {"n": 1, "due_at": "2030-01-03T15:00:04.000500Z"},
    }
    # And nothing went to SQS directly; the item remembers the schedule
    assert delayed_count(queue) == 0
    stored = item("remind:o-2")
    assert stored is not None
    assert stored["via"] == {"S": "scheduler"}
    assert stored["schedule_name"] == {"S": job.schedule_name}


def test_local_timezone_is_converted_to_utc(scheduler: JobScheduler) -> None:
    """The expression is always UTC, whatever zone the caller used."""
    # Given an aware due time at UTC+02:00
    plus_two = datetime(2030, 1, 2, 16, 30, tzinfo=timezone(timedelta(hours=2)))

    # When it is scheduled
    job = schedule_job("send_reminder", {}, key="tz", at=plus_two, scheduler=scheduler)

    # Then the schedule fires at 14:30 UTC
    got = _client("scheduler").get_schedule(Name=job.schedule_name, GroupName=GROUP)
    assert got["ScheduleExpression"] == "at(2030-01-02T14:30:00)"


@pytest.mark.parametrize(
    ("seconds", "via"), [(MAX_SQS_DELAY_SECONDS, "sqs"), (MAX_SQS_DELAY_SECONDS + 1, "scheduler")]
)
def test_fifteen_minute_boundary(
    scheduler: JobScheduler, queue: WorkQueueFixture, seconds: int, via: str
) -> None:
    """900 s is still SQS's to delay; 901 s needs the scheduler."""
    # Given a delay right at or just past SQS's maximum
    # When it is scheduled
    job = schedule_job(
        "expire_cart", {}, key=f"cart:{seconds}", delay=timedelta(seconds=seconds), scheduler=scheduler
    )

    # Then it takes the matching path
    assert job.via == via
    assert delayed_count(queue) == (1 if via == "sqs" else 0)
    assert len(schedules()) == (1 if via == "scheduler" else 0)


# -- idempotency and names ---------------------------------------------------------------------


def test_same_key_twice_schedules_once(scheduler: JobScheduler) -> None:
    """Scheduling is idempotent per key: the second call sends nothing and reports the first job."""
    # Given a job scheduled for tomorrow
    first = schedule_job("send_reminder", {"v": 1}, key="k", delay=timedelta(days=1), scheduler=scheduler)

    # When the same key is scheduled again (even with other details)
    second = schedule_job("expire_cart", {"v": 2}, key="k", delay=timedelta(hours=2), scheduler=scheduler)

    # Then there is one schedule, one item, and the second call describes the first job
    assert first.created is True
    assert second.created is False
    assert (second.job_type, second.due_at, second.schedule_name) == (
        "send_reminder",
        T0 + timedelta(days=1),
        first.schedule_name,
    )
    assert len(schedules()) == 1
    assert len(items()) == 1


def test_same_key_twice_on_sqs_sends_one_message(scheduler: JobScheduler, queue: WorkQueueFixture) -> None:
    """The short path is idempotent too: one delayed message."""
    # Given a job scheduled in a minute
    schedule_job("expire_cart", {}, key="k2", delay=timedelta(minutes=1), scheduler=scheduler)

    # When it is scheduled again
    again = schedule_job("expire_cart", {}, key="k2", delay=timedelta(minutes=1), scheduler=scheduler)

    # Then only one message waits
    assert again.created is False
    assert delayed_count(queue) == 1


def test_two_keys_get_two_schedule_names(scheduler: JobScheduler) -> None:
    """Keys that slug alike still get distinct names thanks to the hash."""
    # Given two keys that differ only in characters a slug drops
    # When both are scheduled
    a = schedule_job("send_reminder", {}, key="order.1", delay=timedelta(hours=1), scheduler=scheduler)
    b = schedule_job("send_reminder", {}, key="order:1", delay=timedelta(hours=1), scheduler=scheduler)

    # Then there are two schedules with different names
    assert a.schedule_name != b.schedule_name
    assert {s["Name"] for s in schedules()} == {a.schedule_name, b.schedule_name}


def test_schedule_names_are_valid_for_any_key() -> None:
    """Names stay within 64 characters of [0-9A-Za-z_.-], readable where the key allows."""
    # Given keys that are long, exotic or have no usable characters at all
    keys = ["x" * 200, "ünïcødé/ключ", "///", "order-42"]

    # When names are derived
    names = [schedule_name_for(key) for key in keys]

    # Then each is valid, distinct and starts with the readable slug
    assert all(len(name) <= 64 for name in names)
    assert all(re.fullmatch(r"[0-9A-Za-z_.-]+", name) for name in names)
    assert len(set(names)) == len(names)
    assert names[3].startswith("job-order-42-")


# -- cancelling and the worker side -----------------------------------------------------------


def test_cancel_pending_scheduler_job_deletes_the_schedule(scheduler: JobScheduler) -> None:
    """Cancelling a long job removes its schedule and marks the item cancelled."""
    # Given a job scheduled for tomorrow
    schedule_job("send_reminder", {}, key="c1", delay=timedelta(days=1), scheduler=scheduler)

    # When it is cancelled
    outcome = cancel_job("c1", scheduler=scheduler)

    # Then the schedule is gone and the job is cancelled
    assert outcome is CancelOutcome.CANCELLED
    assert schedules() == []
    stored = item("c1")
    assert stored is not None
    assert stored["status"] == {"S": "cancelled"}


def test_cancel_twice_reports_already_cancelled(scheduler: JobScheduler) -> None:
    """A second cancel is reported, not raised."""
    # Given a cancelled job
    schedule_job("send_reminder", {}, key="c2", delay=timedelta(days=1), scheduler=scheduler)
    cancel_job("c2", scheduler=scheduler)

    # When it is cancelled again
    # Then the outcome says so
    assert cancel_job("c2", scheduler=scheduler) is CancelOutcome.ALREADY_CANCELLED


def test_a_key_cancelled_before_it_is_scheduled_is_never_scheduled(
    scheduler: JobScheduler, queue: WorkQueueFixture
) -> None:
    """A conversion handled before its signup (the signup event was retried) cancels jobs that do not exist
    yet: the cancellation is recorded, and the later schedule of that key sends nothing."""
    # Given a key cancelled before anything was scheduled under it
    assert cancel_job("early", scheduler=scheduler) is CancelOutcome.CANCELLED_BEFORE_SCHEDULED
    # When it is scheduled afterwards, through each path
    soon = schedule_job("send_reminder", {}, key="early", delay=timedelta(seconds=30), scheduler=scheduler)
    later = schedule_job("send_reminder", {}, key="early", delay=timedelta(days=2), scheduler=scheduler)
    # Then nothing is sent or scheduled, the job says cancelled, and the record expires like any job's
    assert (soon.created, soon.status, later.created, later.status) == (
        False, JobStatus.CANCELLED, False, JobStatus.CANCELLED,
    )  # fmt: skip
    assert delayed_count(queue) == 0 and receive(queue) == [] and schedules() == []
    stored = item("early")
    assert stored is not None and int(stored["expires_at"]["N"]) == int((T0 + timedelta(days=7)).timestamp())
    assert cancel_job("early", scheduler=scheduler) is CancelOutcome.ALREADY_CANCELLED


def test_cancel_after_schedule_fired_ignores_missing_schedule(scheduler: JobScheduler) -> None:
    """The schedule may have fired (and deleted itself) just before the cancel."""
    # Given a scheduled job whose schedule has already gone
    job = schedule_job("send_reminder", {}, key="c3", delay=timedelta(hours=1), scheduler=scheduler)
    _client("scheduler").delete_schedule(Name=job.schedule_name, GroupName=GROUP)

    # When it is cancelled
    # Then it is still reported cancelled
    assert cancel_job("c3", scheduler=scheduler) is CancelOutcome.CANCELLED


@pytest.mark.parametrize("complete", [False, True])
def test_cancel_after_claim_or_complete_is_already_done(scheduler: JobScheduler, complete: bool) -> None:
    """A running or finished job can no longer be cancelled."""
    # Given a job that was claimed (and maybe completed)
    schedule_job("expire_cart", {}, key="c4", delay=timedelta(seconds=30), scheduler=scheduler)
    claim = scheduler.claim("c4")
    assert claim is not None
    if complete:
        assert scheduler.complete(claim) is True

    # When it is cancelled
    # Then ALREADY_DONE
    assert cancel_job("c4", scheduler=scheduler) is CancelOutcome.ALREADY_DONE


def test_claim_after_cancel_is_refused(
    scheduler: JobScheduler, queue: WorkQueueFixture, clock: time_machine.Traveller
) -> None:
    """A delayed SQS message cannot be recalled: the worker's claim is what stops it."""
    # Given a short job that was cancelled
    schedule_job("expire_cart", {}, key="c5", delay=timedelta(seconds=30), scheduler=scheduler)
    assert cancel_job("c5", scheduler=scheduler) is CancelOutcome.CANCELLED

    # When its message still arrives and the worker tries to run it
    clock.move_to(T0 + timedelta(seconds=31))
    message = JobMessage.parse(receive(queue)[0]["Body"])
    with run_once(message.job_key, scheduler=scheduler) as claimed:
        # Then it is told to do nothing
        assert claimed is False
    assert item("c5")["status"] == {"S": "cancelled"}  # type: ignore[index]


def test_a_job_claimed_by_a_live_run_comes_back_after_its_lease(
    scheduler: JobScheduler, clock: time_machine.Traveller
) -> None:
    """A delivery that finds the job held by another run must not be acknowledged: that run may die."""
    # Given a job claimed by a run that is still within its lease
    schedule_job("expire_cart", {}, key="c6", delay=timedelta(seconds=1), scheduler=scheduler)
    assert scheduler.claim("c6") is not None

    # When a second delivery tries to run it, within the lease and after it
    clock.move_to(T0 + timedelta(minutes=5))
    with pytest.raises(JobBusyError) as busy, run_once("c6", scheduler=scheduler):
        pytest.fail("a held job must not run twice")
    clock.move_to(T0 + scheduler.claim_lease + timedelta(seconds=1))
    with run_once("c6", scheduler=scheduler) as claimed:
        ran_after_lease = claimed

    # Then the first is a transient error that asks to come back when the lease ends; the second runs
    assert busy.value.retry_after_seconds == 10 * 60
    assert ran_after_lease is True
    assert item("c6")["status"] == {"S": "done"}  # type: ignore[index]


def test_a_failed_run_releases_its_claim_so_the_redelivery_runs_it(scheduler: JobScheduler) -> None:
    """The defect this guards: a run that failed after its claim kept the job `running` for the whole lease,
    and the redelivery found it claimed and was acknowledged: the job never ran."""
    # Given a due job whose first run fails (a throttled write, say)
    schedule_job("expire_cart", {}, key="c8", delay=timedelta(seconds=1), scheduler=scheduler)
    with pytest.raises(RuntimeError), run_once("c8", scheduler=scheduler) as claimed:
        assert claimed is True
        raise RuntimeError("throttled")
    # When it is delivered again at once
    with run_once("c8", scheduler=scheduler) as claimed_again:
        ran = claimed_again
    # Then the job was pending again after the failure, and the second run ran it and finished it
    assert ran is True
    assert item("c8")["status"] == {"S": "done"}  # type: ignore[index]


def test_a_claim_taken_over_after_its_lease_cannot_complete_or_release(
    scheduler: JobScheduler, clock: time_machine.Traveller
) -> None:
    """A run that outlived its lease no longer owns the job: its completion or release changes nothing."""
    # Given a claim whose lease ended, and another run that took the job over
    schedule_job("expire_cart", {}, key="c9", delay=timedelta(seconds=1), scheduler=scheduler)
    stale = scheduler.claim("c9")
    clock.move_to(T0 + scheduler.claim_lease + timedelta(seconds=1))
    current = scheduler.claim("c9")
    assert stale is not None and current is not None
    # When the stale run completes or releases it
    # Then nothing changes, and the current run still completes it
    assert scheduler.release(stale) is False
    assert scheduler.complete(stale) is False
    assert item("c9")["status"] == {"S": "running"}  # type: ignore[index]
    assert scheduler.complete(current) is True


def test_an_unknown_job_does_nothing(scheduler: JobScheduler) -> None:
    """Missing jobs are never run."""
    with run_once("missing", scheduler=scheduler) as claimed:
        assert claimed is False
    assert item("missing") is None


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"at": datetime(2030, 1, 2)}, NaiveDatetimeError, "datetime.now(UTC)"),
        ({"at": T0 - timedelta(seconds=2)}, PastDueError, "in the past"),
        ({"at": T0 + timedelta(hours=1), "delay": timedelta(hours=1)}, JobTimingError, "exactly one"),
        ({}, JobTimingError, "exactly one"),
        ({"delay": timedelta(seconds=-1)}, JobTimingError, "negative"),
    ],
    ids=["naive", "past", "both", "neither", "negative-delay"],
)
def test_bad_timing_is_refused(
    scheduler: JobScheduler, kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    """Each timing mistake raises its own error with a clear message, before anything is stored."""
    # Given a bad combination of at/delay
    # When scheduling
    # Then the matching error is raised and nothing is stored
    with pytest.raises(error, match=re.escape(text)):
        schedule_job("expire_cart", {}, key="bad", scheduler=scheduler, **kwargs)
    assert items() == []


def test_unknown_job_type_lists_the_known_ones(scheduler: JobScheduler) -> None:
    """A typo in the job type fails now, not when due."""
    # Given a job type nobody handles
    # When scheduling
    # Then the error lists the known types
    with pytest.raises(UnknownJobTypeError, match="expire_cart, send_reminder"):
        schedule_job("send_remindr", {}, key="t", delay=timedelta(seconds=1), scheduler=scheduler)


@pytest.mark.parametrize(
    ("delay", "size", "limit"),
    [(timedelta(minutes=1), 262_144, "SQS"), (timedelta(hours=1), 8_192, "EventBridge Scheduler")],
    ids=["sqs", "scheduler"],
)
def test_payload_too_large_for_each_path(
    scheduler: JobScheduler, delay: timedelta, size: int, limit: str
) -> None:
    """Each path has its own limit; the error names it."""
    # Given a payload as big as the path's whole limit
    payload = {"blob": "x" * size}

    # When scheduling
    # Then it is refused and nothing is stored or sent
    with pytest.raises(PayloadTooLargeError, match=limit):
        schedule_job("expire_cart", payload, key="big", delay=delay, scheduler=scheduler)
    assert items() == []
    assert schedules() == []


def test_payload_fitting_sqs_but_not_scheduler(scheduler: JobScheduler) -> None:
    """A 10 kB payload may wait 15 minutes but not 16."""
    # Given a 10 kB payload
    payload = {"blob": "x" * 10_000}

    # When scheduled on each path
    short = schedule_job("expire_cart", payload, key="p1", delay=timedelta(minutes=15), scheduler=scheduler)

    # Then only the short one is accepted
    assert short.via == "sqs"
    with pytest.raises(PayloadTooLargeError):
        schedule_job("expire_cart", payload, key="p2", delay=timedelta(minutes=16), scheduler=scheduler)


@pytest.mark.parametrize(
    "payload", [{"when": T0}, {"ids": {1, 2}}, {"x": float("nan")}], ids=["datetime", "set", "nan"]
)
def test_payload_not_json_is_refused(scheduler: JobScheduler, payload: dict[str, Any]) -> None:
    """Only JSON travels; the error says so rather than failing in botocore."""
    # Given a payload JSON cannot encode
    # When scheduling
    # Then it is refused
    with pytest.raises(PayloadNotSerializableError, match="JSON"):
        schedule_job("expire_cart", payload, key="j", delay=timedelta(seconds=1), scheduler=scheduler)


@pytest.mark.parametrize(
    "key", ["", "   ", "k" * 129, "user 1/reminder"], ids=["empty", "blank", "too-long", "characters"]
)
def test_bad_key_is_refused(scheduler: JobScheduler, key: str) -> None:
    """The key is the job's identity: it must be present and fit the table."""
    # Given an unusable key
    # When scheduling
    # Then it is refused
    with pytest.raises(InvalidJobKeyError):
        schedule_job("expire_cart", {}, key=key, delay=timedelta(seconds=1), scheduler=scheduler)


# -- failures and recovery ---------------------------------------------------------------------


class FailingScheduler:
    """A scheduler client whose create_schedule fails the given way."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.calls = 0

    def create_schedule(self, **_kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        raise ClientError({"Error": {"Code": self.code, "Message": "simulated"}}, "CreateSchedule")


def test_failed_schedule_creation_leaves_no_item(scheduler: JobScheduler) -> None:
    """No orphan item: a retry after a failed create_schedule schedules the job for real."""
    # Given a scheduler client that is throttled
    failing: Any = FailingScheduler("ThrottlingException")
    broken = JobScheduler(**{**vars(scheduler), "scheduler_client": failing})

    # When scheduling fails
    with pytest.raises(ClientError):
        schedule_job("send_reminder", {}, key="f1", delay=timedelta(days=1), scheduler=broken)

    # Then no item is left, and a retry with a working client succeeds
    assert items() == []
    retried = schedule_job("send_reminder", {}, key="f1", delay=timedelta(days=1), scheduler=scheduler)
    assert retried.created is True
    assert len(schedules()) == 1


def test_existing_schedule_counts_as_already_scheduled(scheduler: JobScheduler) -> None:
    """A ConflictException (the schedule survived an interrupted try) is success, not failure."""
    # Given a scheduler client reporting that the schedule exists
    conflicting: Any = FailingScheduler("ConflictException")
    scheduler_with_conflict = JobScheduler(**{**vars(scheduler), "scheduler_client": conflicting})

    # When scheduling
    job = schedule_job(
        "send_reminder", {}, key="f2", delay=timedelta(days=1), scheduler=scheduler_with_conflict
    )

    # Then it is reported as not created, and the item stays so the job can be claimed and cancelled
    assert job.created is False
    stored = item("f2")
    assert stored is not None
    assert stored["status"] == {"S": "pending"}


# -- configuration and the body ----------------------------------------------------------------


def test_from_environment_and_module_default(
    scheduler: JobScheduler, queue: WorkQueueFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module-level functions use the environment's scheduler when none is passed."""
    # Given the stack's environment
    for name, value in {
        "JOBS_QUEUE_URL": queue.url,
        "JOBS_QUEUE_ARN": queue.arn,
        "JOBS_SCHEDULE_GROUP": GROUP,
        "JOBS_SCHEDULER_ROLE_ARN": ROLE_ARN,
        "JOBS_DEAD_LETTER_ARN": scheduler.dead_letter_arn,
        "JOBS_TABLE_NAME": TABLE,
        "JOB_TYPES": " send_reminder, expire_cart ,",
    }.items():
        monkeypatch.setenv(name, value)

    # When a job is scheduled without an explicit scheduler
    job = schedule_job("send_reminder", {}, key="env", delay=timedelta(hours=1))
    configured = jobs.default_scheduler()

    # Then the environment's configuration was used
    assert job.created is True
    assert configured.job_types == JOB_TYPES
    assert configured.schedule_group == GROUP
    assert configured.claim_lease == jobs.DEFAULT_CLAIM_LEASE
    assert len(schedules()) == 1


def test_the_claim_lease_is_the_workers_timeout_the_stack_passes(
    scheduler: JobScheduler, monkeypatch: pytest.MonkeyPatch, clock: time_machine.Traveller
) -> None:
    """A run cannot outlive its function's timeout, so a claim of a worker that died is taken over after it."""
    monkeypatch.setenv("JOBS_TABLE_NAME", TABLE)
    monkeypatch.setenv("JOBS_CLAIM_LEASE_SECONDS", "60")
    schedule_job("expire_cart", {}, key="lease", delay=timedelta(seconds=1), scheduler=scheduler)
    # Given a worker whose run holds the job (the worker's scheduler comes from its environment)
    with run_once("lease") as first:
        assert first is True
        # When another delivery comes within the 60 s lease, and another after it
        clock.move_to(T0 + timedelta(seconds=30))
        with pytest.raises(JobBusyError) as busy, run_once("lease"):
            pytest.fail("a held job must not run twice")
        clock.move_to(T0 + timedelta(seconds=61))
        with run_once("lease") as taken_over:
            # Then the first must come back when the lease ends, and the second takes the job over
            assert busy.value.retry_after_seconds == 30
            assert taken_over is True
    assert item("lease")["status"] == {"S": "done"}  # type: ignore[index]


def test_missing_environment_names_the_variable() -> None:
    """A missing variable fails with its name, not a KeyError deep inside a call."""
    # Given an environment without the role
    environ = {
        "JOBS_QUEUE_URL": "u",
        "JOBS_QUEUE_ARN": "a",
        "JOBS_SCHEDULE_GROUP": "g",
        "JOBS_DEAD_LETTER_ARN": "d",
        "JOBS_TABLE_NAME": "t",
        "JOB_TYPES": "x",
    }

    # When the scheduler is built
    # Then the error names JOBS_SCHEDULER_ROLE_ARN
    with pytest.raises(JobConfigError, match="JOBS_SCHEDULER_ROLE_ARN is not set"):
        JobScheduler.from_environment(environ)


@pytest.mark.parametrize(
    ("body", "error"),
    [("{not json", MalformedJsonError), ('{"job_key": "k"}', SchemaInvalidError)],
    ids=["malformed", "schema"],
)
def test_job_message_parse_errors_are_non_retryable(body: str, error: type[Exception]) -> None:
    """A broken body can never succeed: the worker dead-letters it at once."""
    # Given a body that is not a job
    # When it is parsed
    # Then a non-retryable error is raised
    with pytest.raises(error):
        JobMessage.parse(body)


def test_a_recurring_firing_is_claimed_once(scheduler: JobScheduler) -> None:
    """A recurring schedule's firing has no pending record: the first delivery claims it, a second does not."""
    # Given a firing of a recurring job, keyed by its scheduled time
    key = "daily-summary:2030-01-01T06:00:00Z"
    # When it is delivered twice
    runs = []
    for _ in range(2):
        with run_once(key, recurring=True, scheduler=scheduler) as claimed:
            runs.append(claimed)
    # Then it runs once
    assert runs == [True, False]
    assert scheduler.claim("never-scheduled") is None
