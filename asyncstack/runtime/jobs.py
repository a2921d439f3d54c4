"""Delayed jobs: run work later on AWS with nothing of our own running in between.

Why two paths: SQS can hold a message back for at most 15 minutes (``DelaySeconds`` 900), which
is the cheapest and most precise way to wait a little. Anything later becomes a one-time
EventBridge Scheduler schedule that drops the same job body on the same queue when due and then
deletes itself. The worker consuming the jobs queue sees one message format either way.

A DynamoDB item per job key is the source of truth for the job's state
(``pending -> running -> done`` or ``pending -> cancelled``):

* scheduling is idempotent: the item is created with ``attribute_not_exists`` first, so the same
  key scheduled twice sends or schedules nothing the second time;
* a delayed SQS message cannot be recalled, so cancelling only flips the item; cancelling a key
  that was never scheduled leaves a cancelled item, so a later ``schedule_job`` for it does nothing
  (a conversion handled before its signup);
* if sending or scheduling fails, the item is deleted again so a retry can succeed.

Delivery is at-least-once (SQS, Scheduler retries). The worker runs a job inside ``run_once``: it
claims the job for a lease (a cancelled, done or unknown job does nothing), marks it done when the
work succeeded and releases the claim when it failed, so the redelivery runs it. A delivery that
finds the job claimed by a run still within its lease raises ``JobBusyError``: the message comes
back after the lease instead of being acknowledged, so a run that died mid-job is taken over.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Self

from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.errors import MalformedJsonError, SchemaInvalidError, TransientError
from asyncstack.runtime.events import EventEnvelope

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "CLAIM_LEASE_VARIABLE",
    "MAX_JOB_KEY_LENGTH",
    "MAX_SQS_DELAY_SECONDS",
    "PAST_DUE_TOLERANCE",
    "SCHEDULER_MAX_INPUT_CHARS",
    "SQS_MAX_MESSAGE_BYTES",
    "CancelOutcome",
    "InvalidJobKeyError",
    "InvalidPayloadError",
    "JobBusyError",
    "JobClaim",
    "JobConfigError",
    "JobError",
    "JobMessage",
    "JobScheduler",
    "JobStatus",
    "JobTimingError",
    "NaiveDatetimeError",
    "PastDueError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "ScheduledJob",
    "UnknownJobTypeError",
    "cancel_job",
    "default_scheduler",
    "run_once",
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
# Job items outlive their due time by this much (TTL), long enough to answer cancel/claim/debugging.
ITEM_RETENTION = timedelta(days=7)
# How long a claim blocks other claims; a worker that died mid-job lets a redelivery take over after.
# The stack sets the worker's own timeout (JOBS_CLAIM_LEASE_SECONDS): no run outlives it.
DEFAULT_CLAIM_LEASE = timedelta(minutes=15)
CLAIM_LEASE_VARIABLE = contract.JOBS_CLAIM_LEASE_SECONDS
MAX_JOB_KEY_LENGTH = 128  # the job key is the job message's event_id

# Scheduler names: 1..64 of [0-9A-Za-z_.-]. "job-" + slug + "-" + 16 hex chars of SHA-256.
_SCHEDULE_NAME_PREFIX = "job-"
_SCHEDULE_NAME_MAX = 64
_HASH_CHARS = 16
_SLUG_MAX = _SCHEDULE_NAME_MAX - len(_SCHEDULE_NAME_PREFIX) - 1 - _HASH_CHARS
_NOT_NAME_CHARS_RE = re.compile(r"[^0-9A-Za-z_.-]+")

_KEY_ATTRIBUTE = "job-key"
_TYPE_ATTRIBUTE = "job-type"
_STRING = "String"

Via = Literal["sqs", "scheduler"]


# -- errors ------------------------------------------------------------------------------------


class JobError(ValueError):
    """A job request that can never be scheduled as given (a caller mistake, not an AWS failure).

    A ``ValueError`` so "invalid argument" handlers catch it; AWS failures propagate as botocore
    errors after the job item has been cleaned up.
    """


class InvalidJobKeyError(JobError):
    """The key is empty, too long or not a string."""


class UnknownJobTypeError(JobError):
    """Nobody consumes this job type: the job would fail only when due, so refuse it now."""


class JobTimingError(JobError):
    """The due time is missing, ambiguous (both ``at`` and ``delay``) or negative."""


class NaiveDatetimeError(JobTimingError):
    """``at`` has no timezone: it could mean any of 24+ instants."""


class PastDueError(JobTimingError):
    """``at`` lies in the past (beyond ``PAST_DUE_TOLERANCE``)."""


class InvalidPayloadError(JobError):
    """The payload cannot travel as a job body."""


class PayloadNotSerializableError(InvalidPayloadError):
    """The payload is not JSON (sets, datetimes, NaN, objects...)."""


class PayloadTooLargeError(InvalidPayloadError):
    """The job body exceeds what the chosen path carries (SQS message or Scheduler Input)."""


class JobConfigError(RuntimeError):
    """The stack did not pass the environment the jobs API needs."""


class JobBusyError(TransientError):
    """Another run holds the job's claim: this delivery must come back after the lease, not be dropped
    (that run may die or fail, and then this delivery is the one that runs the job)."""

    def __init__(self, key: str, retry_after_seconds: int) -> None:
        super().__init__(f"job {key} is claimed by another run for {retry_after_seconds} s more")
        self.retry_after_seconds = retry_after_seconds


# -- values ------------------------------------------------------------------------------------


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class CancelOutcome(enum.Enum):
    """What ``cancel_job`` found; reported, never raised, since every case is a normal race."""

    CANCELLED = "cancelled"
    ALREADY_DONE = "already_done"  # running or done: too late to stop it
    ALREADY_CANCELLED = "already_cancelled"
    CANCELLED_BEFORE_SCHEDULED = "cancelled_before_scheduled"  # a later schedule of the key does nothing


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


@dataclass(frozen=True)
class JobClaim:
    """A run's hold on a job: ``token`` fences completing and releasing to the run that claimed it."""

    key: str
    token: str


JOB_SOURCE = "asyncstack.jobs"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")


class JobMessage(BaseModel):
    """A job as the worker receives it, from either path. On the wire it is an event envelope
    (``event_id`` = the job key, ``type`` = the job type, ``data`` = the payload plus ``due_at``), so
    the stack's consumer framework runs jobs with its idempotency and poison handling."""

    model_config = ConfigDict(frozen=True)

    job_key: str
    job_type: str
    payload: dict[str, Any]
    due_at: AwareDatetime
    scheduled_at: AwareDatetime

    @classmethod
    def parse(cls, body: str | bytes) -> Self:
        """Parse a job message; raises the stack's non-retryable errors, as no retry can fix it."""
        try:
            envelope = EventEnvelope.model_validate_json(body)
            data = dict(envelope.data)
            return cls(job_key=envelope.event_id, job_type=envelope.type, due_at=data.pop("due_at", None),
                       payload=data, scheduled_at=envelope.occurred_at)  # fmt: skip
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise MalformedJsonError(f"job body is not JSON: {exc}") from exc
            raise SchemaInvalidError(f"job body is not a job message: {exc}") from exc


class _JobsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    queue_url: str = Field(validation_alias=contract.JOBS_QUEUE_URL, min_length=1)
    queue_arn: str = Field(validation_alias=contract.JOBS_QUEUE_ARN, min_length=1)
    schedule_group: str = Field(validation_alias=contract.JOBS_SCHEDULE_GROUP, min_length=1)
    role_arn: str = Field(validation_alias=contract.JOBS_SCHEDULER_ROLE_ARN, min_length=1)
    dead_letter_arn: str = Field(validation_alias=contract.JOBS_DEAD_LETTER_ARN, min_length=1)
    jobs_table: str = Field(validation_alias=contract.JOBS_TABLE_NAME, min_length=1)
    job_types: frozenset[str] = Field(validation_alias=contract.JOB_TYPES, min_length=1)
    claim_lease_seconds: int | None = Field(
        default=None, validation_alias=contract.JOBS_CLAIM_LEASE_SECONDS, gt=0
    )

    @field_validator("job_types", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule_name_for(key: str) -> str:
    """The schedule name for a job key: readable slug for humans, hash so distinct keys never collide."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    slug = _NOT_NAME_CHARS_RE.sub("-", key).strip("-.")[:_SLUG_MAX].rstrip("-.")
    return f"{_SCHEDULE_NAME_PREFIX}{slug}-{digest}" if slug else f"{_SCHEDULE_NAME_PREFIX}{digest}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# -- the scheduler -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobScheduler:
    """Where and how jobs are scheduled; clients default to the shared cached ones, resolved on use."""

    queue_url: str
    queue_arn: str
    schedule_group: str
    role_arn: str
    dead_letter_arn: str
    jobs_table: str
    job_types: frozenset[str]
    retry_attempts: int = 3
    now: Callable[[], datetime] = _utc_now
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
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Configuration the stack passes to producers; a missing variable fails with its name."""
        try:
            settings = _JobsSettings.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = ".".join(str(part) for part in error["loc"])
                problems.append(
                    f"{name} is not set" if error["type"] == "missing" else f"{name}: {error['msg']}"
                )
            raise JobConfigError(
                "jobs API environment is incomplete: " + "; ".join(problems) + " (the stack passes these)"
            ) from exc
        lease = settings.claim_lease_seconds
        return cls(
            **settings.model_dump(exclude={"claim_lease_seconds"}),
            claim_lease=DEFAULT_CLAIM_LEASE if lease is None else timedelta(seconds=lease),
        )

    # clients, resolved on use so nothing is created at import or construction time
    @property
    def _sqs(self) -> SQSClient:
        return self.sqs_client or aws.client("sqs")

    @property
    def _dynamodb(self) -> DynamoDBClient:
        return self.dynamodb_client or aws.client("dynamodb")

    @property
    def _scheduler(self) -> Any:
        return self.scheduler_client or aws.client("scheduler")

    def _now(self) -> datetime:
        now = self.now()
        if now.tzinfo is None:
            raise JobConfigError("JobScheduler.now must return an aware datetime")
        return now

    # -- scheduling --------------------------------------------------------------------------

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
        _check_key(key)
        if job_type not in self.job_types:
            known = ", ".join(sorted(self.job_types)) or "(none)"
            raise UnknownJobTypeError(f"unknown job type {job_type!r}; known job types: {known}")
        now = self._now()
        due = _due_time(now, at=at, delay=delay)
        seconds = max(0, math.ceil((due - now).total_seconds()))
        via: Via = "sqs" if seconds <= self.max_sqs_delay_seconds else "scheduler"
        body = _body(key, job_type, payload, due=due, now=now)
        schedule_name = schedule_name_for(key) if via == "scheduler" else None
        _check_size(body, key, job_type, via)

        existing = self._put_pending(key, job_type, due=due, now=now, via=via, schedule_name=schedule_name)
        if existing is not None:
            return existing  # already scheduled: send nothing
        job = ScheduledJob(
            job_key=key,
            job_type=job_type,
            due_at=due,
            via=via,
            schedule_name=schedule_name,
            status=JobStatus.PENDING,
            created=True,
        )
        try:
            if schedule_name is None:
                self._send(key, job_type, body, seconds)
            elif not self._create_schedule(schedule_name, due, body):
                return replace(job, created=False)
        except BaseException:
            self._forget(key)
            raise
        return job

    def _put_pending(
        self, key: str, job_type: str, *, due: datetime, now: datetime, via: Via, schedule_name: str | None
    ) -> ScheduledJob | None:
        """Create the pending item; returns the existing job instead if the key is taken."""
        item: dict[str, Any] = {
            "job_key": {"S": key},
            "job_type": {"S": job_type},
            "status": {"S": JobStatus.PENDING.value},
            "due_at": {"S": _iso(due)},
            "scheduled_at": {"S": _iso(now)},
            "via": {"S": via},
            "expires_at": {"N": str(int((due + ITEM_RETENTION).timestamp()))},
        }
        if schedule_name is not None:
            item["schedule_name"] = {"S": schedule_name}
        try:
            self._dynamodb.put_item(
                TableName=self.jobs_table,
                Item=item,
                ConditionExpression="attribute_not_exists(job_key)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing: Any = exc.response.get("Item") or self._get(key)
            if not existing:  # vanished between the two calls (TTL): vanishingly rare, retryable
                raise
            logger.info("job %s already scheduled or cancelled; nothing sent", key)
            requested = ScheduledJob(job_key=key, job_type=job_type, due_at=due, via=via,
                                     schedule_name=schedule_name, status=JobStatus.PENDING, created=False)  # fmt: skip
            return _job_from_item(existing, requested)
        return None

    def _send(self, key: str, job_type: str, body: str, seconds: int) -> None:
        self._sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            DelaySeconds=seconds,
            MessageAttributes=_attributes(key, job_type),
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
            if _error_code(exc) == "ConflictException":
                logger.info("schedule %s already exists; keeping it", name)
                return False
            raise
        return True

    def _forget(self, key: str) -> None:
        """Delete the pending item after a failed send, so a retry is not mistaken for a duplicate."""
        try:
            self._dynamodb.delete_item(
                TableName=self.jobs_table,
                Key={"job_key": {"S": key}},
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":pending": {"S": JobStatus.PENDING.value}},
            )
        except Exception:
            logger.exception("could not remove the item of job %s after a failed schedule", key)

    def _get(self, key: str) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self.jobs_table, Key={"job_key": {"S": key}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def status(self, key: str) -> JobStatus | None:
        """The job's status now, or None if nothing was scheduled or cancelled under ``key``."""
        item = self._get(key)
        return None if item is None else JobStatus(item["status"]["S"])

    # -- cancelling and the worker side -------------------------------------------------------

    def cancel(self, key: str) -> CancelOutcome:
        """Cancel a pending job; a job already running, done or cancelled is reported, not raised.

        A key that was never scheduled gets a cancelled item, so a later ``schedule`` of it does nothing."""
        _check_key(key)
        now = self._now()
        try:
            response = self._dynamodb.update_item(
                TableName=self.jobs_table,
                Key={"job_key": {"S": key}},
                UpdateExpression="SET #s = :cancelled, cancelled_at = :now, "
                "expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(job_key) OR #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": JobStatus.CANCELLED.value},
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":now": {"S": _iso(now)},
                    ":expires": {"N": str(int((now + ITEM_RETENTION).timestamp()))},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            item: Any = exc.response.get("Item") or self._get(key) or {}
            if item.get("status", {}).get("S") == JobStatus.CANCELLED.value:
                return CancelOutcome.ALREADY_CANCELLED
            return CancelOutcome.ALREADY_DONE

        previous: Any = response.get("Attributes")
        if not previous:
            logger.info("job %s cancelled before it was scheduled; scheduling it will do nothing", key)
            return CancelOutcome.CANCELLED_BEFORE_SCHEDULED
        if previous.get("via", {}).get("S") == "scheduler":
            self._delete_schedule(previous["schedule_name"]["S"])
        return CancelOutcome.CANCELLED

    def _delete_schedule(self, name: str) -> None:
        """Best effort: a schedule that still fires finds the job cancelled and does nothing."""
        try:
            self._scheduler.delete_schedule(Name=name, GroupName=self.schedule_group)
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":  # it may have just fired
                logger.warning("could not delete schedule %s of a cancelled job: %s", name, exc)

    def claim(self, key: str, *, recurring: bool = False) -> JobClaim | None:
        """Take a due job for running for ``claim_lease``.

        None means do nothing (cancelled, done, unknown); ``JobBusyError`` means another run holds
        the job within its lease, so this delivery must come back later."""
        now = self._now()
        condition = "#s = :pending OR (#s = :running AND claimed_until < :now)"
        token = uuid.uuid4().hex
        try:
            self._dynamodb.update_item(
                TableName=self.jobs_table,
                Key={"job_key": {"S": key}},
                UpdateExpression="SET #s = :running, claimed_until = :until, claim_token = :token",
                ConditionExpression=f"attribute_not_exists(job_key) OR {condition}"
                if recurring
                else condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":now": {"N": str(now.timestamp())},
                    ":until": {"N": str((now + self.claim_lease).timestamp())},
                    ":token": {"S": token},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            item: Any = exc.response.get("Item") or self._get(key) or {}
            if item.get("status", {}).get("S") == JobStatus.RUNNING.value:
                held_for = float(item["claimed_until"]["N"]) - now.timestamp()
                raise JobBusyError(key, max(1, math.ceil(held_for))) from None
            return None
        return JobClaim(key=key, token=token)

    def complete(self, claim: JobClaim) -> bool:
        """Mark a claimed job done; False if the claim was lost (its lease ended and another run took it)."""
        return self._end_claim(claim, "SET #s = :to, completed_at = :now REMOVE claimed_until, claim_token",
                               JobStatus.DONE)  # fmt: skip

    def release(self, claim: JobClaim) -> bool:
        """Give a failed run's job back, so its redelivery runs it now rather than after the lease."""
        return self._end_claim(claim, "SET #s = :to, released_at = :now REMOVE claimed_until, claim_token",
                               JobStatus.PENDING)  # fmt: skip

    def _end_claim(self, claim: JobClaim, update: str, status: JobStatus) -> bool:
        try:
            self._dynamodb.update_item(
                TableName=self.jobs_table,
                Key={"job_key": {"S": claim.key}},
                UpdateExpression=update,
                ConditionExpression="#s = :running AND claim_token = :token",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":to": {"S": status.value},
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":token": {"S": claim.token},
                    ":now": {"S": _iso(self._now())},
                },
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                logger.warning("the claim on job %s was lost before it ended", claim.key)
                return False
            raise
        return True


# -- validation helpers ------------------------------------------------------------------------


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key.strip():
        raise InvalidJobKeyError("job key must be a non-empty string")
    if len(key) > MAX_JOB_KEY_LENGTH:
        raise InvalidJobKeyError(f"job key must be at most {MAX_JOB_KEY_LENGTH} characters, got {len(key)}")
    if not _KEY_PATTERN.match(key):
        raise InvalidJobKeyError(f"job key {key!r} may contain only letters, digits and . _ : -")


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
        raise PastDueError(f"at={_iso(at)} is in the past (now {_iso(now)})")
    return at


def _body(key: str, job_type: str, payload: Mapping[str, Any], *, due: datetime, now: datetime) -> str:
    if not isinstance(payload, Mapping):
        raise PayloadNotSerializableError(f"payload must be a mapping, got {type(payload).__name__}")
    if "due_at" in payload:
        raise InvalidPayloadError("payload key 'due_at' is reserved: the job's due time travels under it")
    document = {
        "event_id": key,
        "type": job_type,
        "source": JOB_SOURCE,
        "occurred_at": _iso(now),
        "data": {**payload, "due_at": _iso(due)},
    }
    try:
        # ASCII-escaped JSON: only characters SQS accepts, and characters == bytes for the limits.
        return json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadNotSerializableError(f"payload is not JSON-serialisable: {exc}") from exc


def _attributes(key: str, job_type: str) -> dict[str, Any]:
    return {
        _KEY_ATTRIBUTE: {"DataType": _STRING, "StringValue": key},
        _TYPE_ATTRIBUTE: {"DataType": _STRING, "StringValue": job_type},
    }


def _check_size(body: str, key: str, job_type: str, via: Via) -> None:
    if via == "scheduler":
        if len(body) > SCHEDULER_MAX_INPUT_CHARS:
            raise PayloadTooLargeError(
                f"job body is {len(body)} characters; EventBridge Scheduler carries at most "
                f"{SCHEDULER_MAX_INPUT_CHARS} (jobs due in more than {MAX_SQS_DELAY_SECONDS} s): "
                "store the data elsewhere and pass a reference"
            )
        return
    size = len(body.encode("utf-8"))
    for name, value in ((_KEY_ATTRIBUTE, key), (_TYPE_ATTRIBUTE, job_type)):
        size += len(name.encode("utf-8")) + len(_STRING) + len(value.encode("utf-8"))
    if size > SQS_MAX_MESSAGE_BYTES:
        raise PayloadTooLargeError(
            f"job message is {size} bytes; SQS carries at most {SQS_MAX_MESSAGE_BYTES}: "
            "store the data elsewhere and pass a reference"
        )


def _job_from_item(item: Mapping[str, Any], requested: ScheduledJob) -> ScheduledJob:
    """The job an existing item records; a key cancelled before it was scheduled has only its status."""
    status = JobStatus(item["status"]["S"])
    if "job_type" not in item:
        return replace(requested, status=status, schedule_name=None)
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


@cache
def default_scheduler() -> JobScheduler:
    """The environment's scheduler, built once per execution environment (cold start)."""
    return JobScheduler.from_environment()


def _resolve(scheduler: JobScheduler | None) -> JobScheduler:
    return scheduler if scheduler is not None else default_scheduler()


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
    return _resolve(scheduler).schedule(job_type, payload, key=key, at=at, delay=delay)


def cancel_job(key: str, *, scheduler: JobScheduler | None = None) -> CancelOutcome:
    """Cancel the job scheduled under ``key``; the outcome says what was found."""
    return _resolve(scheduler).cancel(key)


def _job_state_only() -> JobScheduler:
    """What the jobs worker is given: the jobs table to record state in, nothing to schedule with."""
    table = os.environ.get(contract.JOBS_TABLE_NAME)
    if not table:
        raise JobConfigError(
            f"{contract.JOBS_TABLE_NAME} is not set (the stack passes it to the jobs worker)"
        )
    lease = os.environ.get(CLAIM_LEASE_VARIABLE)
    return JobScheduler(queue_url="", queue_arn="", schedule_group="", role_arn="", dead_letter_arn="",
                        jobs_table=table, job_types=frozenset(),
                        claim_lease=timedelta(seconds=int(lease)) if lease else DEFAULT_CLAIM_LEASE)  # fmt: skip


@contextmanager
def run_once(key: str, *, recurring: bool = False, scheduler: JobScheduler | None = None) -> Iterator[bool]:
    """Worker side: run the body for job ``key`` once. It gets True to run the job, False to do nothing
    (cancelled, done, unknown); ``JobBusyError`` if another run holds it. When the body returns the job is
    done; when it raises, the claim is released and the error propagates, so the delivery is retried.

    ``recurring``: a firing of a recurring schedule, which no ``schedule_job`` recorded; its first
    delivery creates the record, a second delivery of the same firing finds it."""
    jobs = scheduler or _job_state_only()
    claim = jobs.claim(key, recurring=recurring)
    if claim is None:
        yield False
        return
    try:
        yield True
    except BaseException:
        try:
            jobs.release(claim)
        except Exception:  # the lease still ends: the retry then finds the job claimable
            logger.exception("could not release the claim on job %s after a failed run", key)
        raise
    jobs.complete(claim)
