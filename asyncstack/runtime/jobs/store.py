"""The job store: one DynamoDB item per job key, the source of truth for a job's state.

``pending -> running -> done``, or ``pending -> cancelled``. Creating the item is conditional, so a
key is scheduled once; cancelling a key never scheduled leaves a cancelled item, so a later
schedule of it does nothing (a conversion handled before its signup).

Delivery is at-least-once (SQS, Scheduler retries). The worker runs a job inside ``run_once``: it
claims the job for a lease (a cancelled, done or unknown job does nothing), marks it done when the
work succeeded and releases the claim when it failed, so the redelivery runs it. A delivery that
finds the job claimed by a run still within its lease raises ``JobBusyError``: the message comes
back after the lease instead of being acknowledged, so a run that died mid-job is taken over.
"""

from __future__ import annotations

import enum
import logging
import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError
from pydantic import Field

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.jobs.errors import JobBusyError, JobConfigError
from asyncstack.runtime.jobs.message import check_job_key
from asyncstack.runtime.settings import EnvironmentSettings, load
from asyncstack.runtime.timestamps import iso, utc_now

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DEFAULT_CLAIM_LEASE",
    "ITEM_RETENTION",
    "CancelOutcome",
    "Cancellation",
    "JobClaim",
    "JobClaims",
    "JobStatus",
    "JobStore",
    "JobStoreSettings",
    "default_store",
    "run_once",
]

logger = logging.getLogger(__name__)

# Job items outlive their due time by this much (TTL), long enough to answer cancel/claim/debugging.
ITEM_RETENTION = timedelta(days=7)
# How long a claim blocks other claims when the stack passes no lease (JOBS_CLAIM_LEASE_SECONDS, the
# worker's own timeout: no run outlives it).
DEFAULT_CLAIM_LEASE = timedelta(minutes=15)


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class CancelOutcome(enum.Enum):
    """What cancelling found; reported, never raised, since every case is a normal race."""

    CANCELLED = "cancelled"
    ALREADY_DONE = "already_done"  # running or done: too late to stop it
    ALREADY_CANCELLED = "already_cancelled"
    CANCELLED_BEFORE_SCHEDULED = "cancelled_before_scheduled"  # a later schedule of the key does nothing


@dataclass(frozen=True)
class Cancellation:
    """A cancel's outcome, and the one-time schedule the cancelled job was waiting on (if any)."""

    outcome: CancelOutcome
    schedule_name: str | None = None


@dataclass(frozen=True)
class JobClaim:
    """A run's hold on a job: ``token`` fences completing and releasing to the run that claimed it."""

    key: str
    token: str


class JobStoreSettings(EnvironmentSettings):
    """What ``asyncstack.cdk.DelayedJobs`` tells its worker (and every function that schedules)."""

    jobs_table: str = Field(validation_alias=contract.JOBS_TABLE_NAME, min_length=1)
    claim_lease_seconds: int | None = Field(
        default=None, validation_alias=contract.JOBS_CLAIM_LEASE_SECONDS, gt=0
    )

    @property
    def claim_lease(self) -> timedelta:
        seconds = self.claim_lease_seconds
        return DEFAULT_CLAIM_LEASE if seconds is None else timedelta(seconds=seconds)


class JobClaims(Protocol):
    """What ``run_once`` needs: a ``JobStore``, or a ``JobScheduler`` (which answers for its store)."""

    def claim(self, key: str, *, recurring: bool = False) -> JobClaim | None: ...

    def complete(self, claim: JobClaim) -> bool: ...

    def release(self, claim: JobClaim) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class JobStore:
    """The jobs table; the client defaults to the shared cached one, resolved on use."""

    table: str
    claim_lease: timedelta = field(default=DEFAULT_CLAIM_LEASE)
    now: Callable[[], datetime] = utc_now
    dynamodb_client: DynamoDBClient | None = None

    @classmethod
    def from_settings(cls, settings: JobStoreSettings, **overrides: Any) -> JobStore:
        return cls(table=settings.jobs_table, claim_lease=settings.claim_lease, **overrides)

    @property
    def _dynamodb(self) -> DynamoDBClient:
        return self.dynamodb_client or aws.client("dynamodb")

    def current_time(self) -> datetime:
        """``now()``, refused if naive: every stored time and lease is computed from it."""
        now = self.now()
        if now.tzinfo is None:
            raise JobConfigError("the jobs clock (now) must return an aware datetime")
        return now

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The job's item as stored (attribute values), or None."""
        response = self._dynamodb.get_item(
            TableName=self.table, Key={"job_key": {"S": key}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def status(self, key: str) -> JobStatus | None:
        """The job's status now, or None if nothing was scheduled or cancelled under ``key``."""
        item = self.get(key)
        return None if item is None else JobStatus(item["status"]["S"])

    # -- the scheduling side ---------------------------------------------------------------------

    def create_pending(
        self,
        key: str,
        job_type: str,
        *,
        due: datetime,
        now: datetime,
        via: str,
        schedule_name: str | None,
    ) -> dict[str, Any] | None:
        """Create the pending item; if the key is taken, returns the item that holds it instead."""
        item: dict[str, Any] = {
            "job_key": {"S": key},
            "job_type": {"S": job_type},
            "status": {"S": JobStatus.PENDING.value},
            "due_at": {"S": iso(due)},
            "scheduled_at": {"S": iso(now)},
            "via": {"S": via},
            "expires_at": {"N": str(int((due + ITEM_RETENTION).timestamp()))},
        }
        if schedule_name is not None:
            item["schedule_name"] = {"S": schedule_name}
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(job_key)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing: Any = exc.response.get("Item") or self.get(key)
            if not existing:  # vanished between the two calls (TTL): vanishingly rare, retryable
                raise
            logger.info("job %s already scheduled or cancelled; nothing sent", key)
            return dict(existing)
        return None

    def forget(self, key: str) -> None:
        """Delete a pending item after a failed send, so a retry is not mistaken for a duplicate."""
        try:
            self._dynamodb.delete_item(
                TableName=self.table,
                Key={"job_key": {"S": key}},
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":pending": {"S": JobStatus.PENDING.value}},
            )
        except Exception:
            logger.exception("could not remove the item of job %s after a failed schedule", key)

    def cancel(self, key: str) -> Cancellation:
        """Cancel a pending job (or a key not scheduled yet); a job running, done or cancelled is reported."""
        check_job_key(key)
        now = self.current_time()
        try:
            response = self._dynamodb.update_item(
                TableName=self.table,
                Key={"job_key": {"S": key}},
                UpdateExpression="SET #s = :cancelled, cancelled_at = :now, "
                "expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(job_key) OR #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": JobStatus.CANCELLED.value},
                    ":pending": {"S": JobStatus.PENDING.value},
                    ":now": {"S": iso(now)},
                    ":expires": {"N": str(int((now + ITEM_RETENTION).timestamp()))},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            item: Any = exc.response.get("Item") or self.get(key) or {}
            if item.get("status", {}).get("S") == JobStatus.CANCELLED.value:
                return Cancellation(CancelOutcome.ALREADY_CANCELLED)
            return Cancellation(CancelOutcome.ALREADY_DONE)
        previous: Any = response.get("Attributes")
        if not previous:
            logger.info("job %s cancelled before it was scheduled; scheduling it will do nothing", key)
            return Cancellation(CancelOutcome.CANCELLED_BEFORE_SCHEDULED)
        waiting_on = (
            previous["schedule_name"]["S"] if previous.get("via", {}).get("S") == "scheduler" else None
        )
        return Cancellation(CancelOutcome.CANCELLED, waiting_on)

    # -- the worker side -------------------------------------------------------------------------

    def claim(self, key: str, *, recurring: bool = False) -> JobClaim | None:
        """Take a due job for running for ``claim_lease``.

        None means do nothing (cancelled, done, unknown); ``JobBusyError`` means another run holds
        the job within its lease, so this delivery must come back later. ``recurring``: a firing of
        a recurring schedule, which nothing recorded before; its first delivery creates the item."""
        now = self.current_time()
        condition = "#s = :pending OR (#s = :running AND claimed_until < :now)"
        token = uuid.uuid4().hex
        try:
            self._dynamodb.update_item(
                TableName=self.table,
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
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            item: Any = exc.response.get("Item") or self.get(key) or {}
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
                TableName=self.table,
                Key={"job_key": {"S": claim.key}},
                UpdateExpression=update,
                ConditionExpression="#s = :running AND claim_token = :token",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":to": {"S": status.value},
                    ":running": {"S": JobStatus.RUNNING.value},
                    ":token": {"S": claim.token},
                    ":now": {"S": iso(self.current_time())},
                },
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                logger.warning("the claim on job %s was lost before it ended", claim.key)
                return False
            raise
        return True


def default_store() -> JobStore:
    """The environment's job store (its settings are read once per cold start)."""
    return JobStore.from_settings(load(JobStoreSettings))


@contextmanager
def run_once(key: str, *, recurring: bool = False, scheduler: JobClaims | None = None) -> Iterator[bool]:
    """Worker side: run the body for job ``key`` once. It gets True to run the job, False to do nothing
    (cancelled, done, unknown); ``JobBusyError`` if another run holds it. When the body returns the job is
    done; when it raises, the claim is released and the error propagates, so the delivery is retried.

    ``scheduler``: where the claim is kept (a ``JobStore`` or ``JobScheduler``); the environment's store
    by default. ``recurring``: see ``JobStore.claim``."""
    jobs = scheduler if scheduler is not None else default_store()
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
