"""Scheduling delayed jobs: run work later on AWS with nothing of our own running in between.

Why two paths: SQS can hold a message back for at most 15 minutes (``DelaySeconds`` 900), which is
the cheapest and most precise way to wait a little. Anything later becomes a one-time EventBridge
Scheduler schedule that drops the same job body on the same queue when due and then deletes itself.
The worker consuming the jobs queue sees one message format either way (``JobMessage``).

The job store's item is written first (``attribute_not_exists``), so the same key scheduled twice
sends or schedules nothing the second time; if sending or scheduling fails, the item is deleted
again so a retry can succeed. A delayed SQS message cannot be recalled, so cancelling flips the
item (the worker then skips the job) and deletes the schedule if there is one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Self

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.jobs.errors import (
    JobConfigError,
    JobTimingError,
    NaiveDatetimeError,
    PastDueError,
    PayloadTooLargeError,
    UnknownJobTypeError,
)
from asyncstack.runtime.jobs.message import check_job_key, job_body, message_attributes, sqs_message_size
from asyncstack.runtime.jobs.store import (
    DEFAULT_CLAIM_LEASE,
    CancelOutcome,
    JobClaim,
    JobStatus,
    JobStore,
    JobStoreSettings,
)
from asyncstack.runtime.settings import SettingsError, load
from asyncstack.runtime.timestamps import iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "MAX_SQS_DELAY_SECONDS",
    "PAST_DUE_TOLERANCE",
    "SCHEDULER_MAX_EVENT_AGE_SECONDS",
    "SCHEDULER_MAX_INPUT_CHARS",
    "SQS_MAX_MESSAGE_BYTES",
    "JobScheduler",
    "JobSchedulerSettings",
    "ScheduledJob",
    "Via",
    "cancel_job",
    "default_scheduler",
    "schedule_job",
    "schedule_name_for",
]

logger = logging.getLogger(__name__)

# SQS holds a message back for at most 15 minutes; later jobs go through EventBridge Scheduler.
MAX_SQS_DELAY_SECONDS = 900
# SQS message size limit (body plus message attributes). Kept at the classic 256 KiB, which every
# queue and every SDK accepts, rather than the larger limit newer queues allow.
SQS_MAX_MESSAGE_BYTES = 262_144
# EventBridge Scheduler: a target's ``Input`` is at most 8192 characters.
SCHEDULER_MAX_INPUT_CHARS = 8192
# How long after the due time Scheduler keeps retrying a failed delivery before dead-lettering it.
SCHEDULER_MAX_EVENT_AGE_SECONDS = 3600
# A due time this little in the past is clock skew between caller and us, not a mistake: run it now.
PAST_DUE_TOLERANCE = timedelta(seconds=1)

# Scheduler names: 1..64 of [0-9A-Za-z_.-]. "job-" + slug + "-" + 16 hex chars of SHA-256.
_SCHEDULE_NAME_PREFIX = "job-"
_SCHEDULE_NAME_MAX = 64
_HASH_CHARS = 16
_SLUG_MAX = _SCHEDULE_NAME_MAX - len(_SCHEDULE_NAME_PREFIX) - 1 - _HASH_CHARS
_NOT_NAME_CHARS_RE = re.compile(r"[^0-9A-Za-z_.-]+")

Via = Literal["sqs", "scheduler"]


@dataclass(frozen=True, kw_only=True)
class ScheduledJob:
    """A scheduled job; ``created`` is False when the key was already scheduled (nothing was sent)."""

    job_key: str
    job_type: str
    due_at: datetime
    via: Via
    schedule_name: str | None
    status: JobStatus
    created: bool


class JobSchedulerSettings(JobStoreSettings):
    """What ``DelayedJobs.grant_scheduling`` tells a function that schedules jobs."""

    queue_url: str = Field(validation_alias=contract.JOBS_QUEUE_URL, min_length=1)
    queue_arn: str = Field(validation_alias=contract.JOBS_QUEUE_ARN, min_length=1)
    schedule_group: str = Field(validation_alias=contract.JOBS_SCHEDULE_GROUP, min_length=1)
    role_arn: str = Field(validation_alias=contract.JOBS_SCHEDULER_ROLE_ARN, min_length=1)
    dead_letter_arn: str = Field(validation_alias=contract.JOBS_DEAD_LETTER_ARN, min_length=1)
    job_types: frozenset[str] = Field(validation_alias=contract.JOB_TYPES, min_length=1)

    @field_validator("job_types", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value


def schedule_name_for(key: str) -> str:
    """The schedule name for a job key: readable slug for humans, hash so distinct keys never collide."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    slug = _NOT_NAME_CHARS_RE.sub("-", key).strip("-.")[:_SLUG_MAX].rstrip("-.")
    return f"{_SCHEDULE_NAME_PREFIX}{slug}-{digest}" if slug else f"{_SCHEDULE_NAME_PREFIX}{digest}"


@dataclass(frozen=True, kw_only=True)
class JobScheduler:
    """Where and how jobs are scheduled; clients default to the shared cached ones, resolved on use.

    It answers for its job store too (``status``, ``claim``, ``complete``, ``release``), so one object
    configures both sides of a worker that schedules its own follow-ups."""

    queue_url: str
    queue_arn: str
    schedule_group: str
    role_arn: str
    dead_letter_arn: str
    jobs_table: str
    job_types: frozenset[str]
    retry_attempts: int = 3
    now: Callable[[], datetime] = utc_now
    sqs_client: SQSClient | None = None
    dynamodb_client: DynamoDBClient | None = None
    scheduler_client: Any = None  # no boto3-stubs for EventBridge Scheduler
    claim_lease: timedelta = field(default=DEFAULT_CLAIM_LEASE)
    # Delays up to this go through an SQS delay, longer ones through Scheduler. Lower it for jobs that
    # should follow an advanceable clock (the local cloud's Scheduler) rather than SQS's wall clock.
    max_sqs_delay_seconds: int = MAX_SQS_DELAY_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.max_sqs_delay_seconds <= MAX_SQS_DELAY_SECONDS:
            raise JobConfigError(
                f"max_sqs_delay_seconds must be 0..{MAX_SQS_DELAY_SECONDS}, got {self.max_sqs_delay_seconds}"
            )

    @classmethod
    def from_settings(cls, settings: JobSchedulerSettings, **overrides: Any) -> Self:
        values = settings.model_dump(exclude={"claim_lease_seconds"})
        return cls(**values, claim_lease=settings.claim_lease, **overrides)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Configuration the stack passes to producers; a missing variable fails with its name."""
        try:
            return cls.from_settings(JobSchedulerSettings.from_environment(environ))
        except SettingsError as error:
            raise JobConfigError(str(error)) from None

    @property
    def store(self) -> JobStore:
        """The job store this scheduler records its jobs in."""
        return JobStore(
            table=self.jobs_table,
            claim_lease=self.claim_lease,
            now=self.now,
            dynamodb_client=self.dynamodb_client,
        )

    # clients, resolved on use so nothing is created at import or construction time
    @property
    def _sqs(self) -> SQSClient:
        return self.sqs_client or aws.client("sqs")

    @property
    def _scheduler(self) -> Any:
        return self.scheduler_client or aws.client("scheduler")

    # -- scheduling ----------------------------------------------------------------------------

    def schedule(
        self,
        job_type: str,
        payload: Mapping[str, Any],
        *,
        key: str,
        at: datetime | None = None,
        delay: timedelta | None = None,
    ) -> ScheduledJob:
        """Schedule ``job_type`` once for ``key``; scheduling the same key again is a no-op."""
        check_job_key(key)
        if job_type not in self.job_types:
            known = ", ".join(sorted(self.job_types)) or "(none)"
            raise UnknownJobTypeError(f"unknown job type {job_type!r}; known job types: {known}")
        store = self.store
        now = store.current_time()
        due = _due_time(now, at=at, delay=delay)
        seconds = max(0, math.ceil((due - now).total_seconds()))
        via: Via = "sqs" if seconds <= self.max_sqs_delay_seconds else "scheduler"
        body = job_body(key, job_type, payload, due=due, now=now)
        schedule_name = schedule_name_for(key) if via == "scheduler" else None
        _check_size(body, key, job_type, via)
        job = ScheduledJob(job_key=key, job_type=job_type, due_at=due, via=via, schedule_name=schedule_name,
                           status=JobStatus.PENDING, created=True)  # fmt: skip

        existing = store.create_pending(key, job_type, due=due, now=now, via=via, schedule_name=schedule_name)
        if existing is not None:
            return _job_from_item(existing, job)  # already scheduled: send nothing
        try:
            if schedule_name is None:
                self._send(key, job_type, body, seconds)
            elif not self._create_schedule(schedule_name, due, body):
                return replace(job, created=False)
        except BaseException:
            store.forget(key)
            raise
        return job

    def _send(self, key: str, job_type: str, body: str, seconds: int) -> None:
        self._sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            DelaySeconds=seconds,
            MessageAttributes=message_attributes(key, job_type),
        )

    def _create_schedule(self, name: str, due: datetime, body: str) -> bool:
        """Create the one-time schedule; False if it already exists (an earlier, interrupted try)."""
        # at() has whole seconds: round up so the job never runs before it is due.
        fire_at = due.astimezone(UTC).replace(tzinfo=None)
        if fire_at.microsecond:
            fire_at = fire_at.replace(microsecond=0) + timedelta(seconds=1)
        try:
            self._scheduler.create_schedule(
                Name=name,
                GroupName=self.schedule_group,
                ScheduleExpression=f"at({fire_at:%Y-%m-%dT%H:%M:%S})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": self.queue_arn,
                    "RoleArn": self.role_arn,
                    "Input": body,
                    "RetryPolicy": {
                        "MaximumRetryAttempts": self.retry_attempts,
                        "MaximumEventAgeInSeconds": SCHEDULER_MAX_EVENT_AGE_SECONDS,
                    },
                    "DeadLetterConfig": {"Arn": self.dead_letter_arn},
                },
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConflictException":
                logger.info("schedule %s already exists; keeping it", name)
                return False
            raise
        return True

    def cancel(self, key: str) -> CancelOutcome:
        """Cancel a pending job; a job already running, done or cancelled is reported, not raised.

        A key that was never scheduled gets a cancelled item, so a later ``schedule`` of it does nothing."""
        cancellation = self.store.cancel(key)
        if cancellation.schedule_name is not None:
            self._delete_schedule(cancellation.schedule_name)
        return cancellation.outcome

    def _delete_schedule(self, name: str) -> None:
        """Best effort: a schedule that still fires finds the job cancelled and does nothing."""
        try:
            self._scheduler.delete_schedule(Name=name, GroupName=self.schedule_group)
        except ClientError as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":  # it may have just fired
                logger.warning("could not delete schedule %s of a cancelled job: %s", name, exc)

    # -- the store's side, for one object that does both -----------------------------------------

    def status(self, key: str) -> JobStatus | None:
        """The job's status now, or None if nothing was scheduled or cancelled under ``key``."""
        return self.store.status(key)

    def claim(self, key: str, *, recurring: bool = False) -> JobClaim | None:
        """``JobStore.claim`` on this scheduler's store."""
        return self.store.claim(key, recurring=recurring)

    def complete(self, claim: JobClaim) -> bool:
        return self.store.complete(claim)

    def release(self, claim: JobClaim) -> bool:
        return self.store.release(claim)


# -- validation helpers ------------------------------------------------------------------------


def _due_time(now: datetime, *, at: datetime | None, delay: timedelta | None) -> datetime:
    if (at is None) == (delay is None):
        raise JobTimingError("pass exactly one of at= (an aware datetime) or delay= (a timedelta)")
    if delay is not None:
        if not isinstance(delay, timedelta):
            raise JobTimingError(f"delay must be a timedelta, got {type(delay).__name__}")
        if delay < timedelta(0):
            raise JobTimingError(f"delay must not be negative, got {delay}")
        return now + delay
    if not isinstance(at, datetime):
        raise JobTimingError(f"at must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise NaiveDatetimeError(
            f"at={at.isoformat()} has no timezone; pass an aware datetime, e.g. datetime.now(UTC) + ..."
        )
    if at < now - PAST_DUE_TOLERANCE:
        raise PastDueError(f"at={iso(at)} is in the past (now {iso(now)})")
    return at


def _check_size(body: str, key: str, job_type: str, via: Via) -> None:
    if via == "scheduler":
        if len(body) > SCHEDULER_MAX_INPUT_CHARS:
            raise PayloadTooLargeError(
                f"job body is {len(body)} characters; EventBridge Scheduler carries at most "
                f"{SCHEDULER_MAX_INPUT_CHARS} (jobs due in more than {MAX_SQS_DELAY_SECONDS} s): "
                "store the data elsewhere and pass a reference"
            )
        return
    size = sqs_message_size(body, key, job_type)
    if size > SQS_MAX_MESSAGE_BYTES:
        raise PayloadTooLargeError(
            f"job message is {size} bytes; SQS carries at most {SQS_MAX_MESSAGE_BYTES}: "
            "store the data elsewhere and pass a reference"
        )


def _job_from_item(item: Mapping[str, Any], requested: ScheduledJob) -> ScheduledJob:
    """The job an existing item records; a key cancelled before it was scheduled has only its status."""
    status = JobStatus(item["status"]["S"])
    if "job_type" not in item:
        return replace(requested, status=status, schedule_name=None, created=False)
    return ScheduledJob(
        job_key=item["job_key"]["S"],
        job_type=item["job_type"]["S"],
        due_at=datetime.fromisoformat(item["due_at"]["S"]),
        via="scheduler" if item["via"]["S"] == "scheduler" else "sqs",
        schedule_name=item.get("schedule_name", {}).get("S"),
        status=status,
        created=False,
    )


# -- module-level API --------------------------------------------------------------------------


def default_scheduler() -> JobScheduler:
    """The environment's scheduler (its settings are read once per cold start)."""
    try:
        return JobScheduler.from_settings(load(JobSchedulerSettings))
    except SettingsError as error:
        raise JobConfigError(str(error)) from None


def schedule_job(
    job_type: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    at: datetime | None = None,
    delay: timedelta | None = None,
    scheduler: JobScheduler | None = None,
) -> ScheduledJob:
    """Run ``job_type`` with ``payload`` at ``at`` or after ``delay``, once per ``key``."""
    return (scheduler or default_scheduler()).schedule(job_type, payload, key=key, at=at, delay=delay)


def cancel_job(key: str, *, scheduler: JobScheduler | None = None) -> CancelOutcome:
    """Cancel the job scheduled under ``key``; the outcome says what was found."""
    return (scheduler or default_scheduler()).cancel(key)
