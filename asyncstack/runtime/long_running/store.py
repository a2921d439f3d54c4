"""The jobs table: one item per job id, with its status, progress, checkpoint, result and webhook.

Every write a run makes after ``begin_run`` is fenced: it applies only while the job is RUNNING at
the chunk the run started from, so a stale run (one a retry overtook) gets
``CheckpointConflictError`` and stops instead of writing over newer progress. A failure is kept only
in its public form (``view.public_failure``); what Step Functions caught goes to the log.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.long_running.checkpoint import Checkpoint
from asyncstack.runtime.long_running.errors import CheckpointConflictError, InvalidJobIdError, UnknownJobError
from asyncstack.runtime.long_running.progress import Progress
from asyncstack.runtime.long_running.view import (
    DEFAULT_FAILURE_MESSAGES,
    attribute_value,
    from_item,
    job_view,
    public_failure,
)
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import EnvironmentSettings, load
from asyncstack.runtime.timestamps import iso, utc_now
from asyncstack.runtime.webhooks.state import DeliveryAttempt, WebhookStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "CALLBACK_URL_FIELD",
    "JOB_ID_PATTERN",
    "TERMINAL_STATUSES",
    "LongRunningJobStore",
    "LongRunningJobsSettings",
    "LongRunningStatus",
    "check_job_id",
    "new_job_id",
]

# The field of a job's request that asks for a webhook when the job ends.
CALLBACK_URL_FIELD = "callback_url"
# Step Functions execution names: 1..80 characters; this subset is also safe in S3 keys and URLs.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class LongRunningStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL_STATUSES = frozenset({LongRunningStatus.SUCCEEDED, LongRunningStatus.FAILED})


class LongRunningJobsSettings(EnvironmentSettings):
    """What ``asyncstack.cdk.LongRunningJobs`` tells every function that reads or writes its jobs."""

    jobs_table: str = Field(validation_alias=contract.LONG_RUNNING_JOBS_TABLE_NAME, min_length=1)


def new_job_id(prefix: str = "job") -> str:
    """A fresh job id (also the execution name): ``<prefix>-`` and 32 hex characters."""
    return check_job_id(f"{prefix}-{uuid.uuid4().hex}")


def check_job_id(job_id: object) -> str:
    """``job_id`` if it can name a Step Functions execution, else ``InvalidJobIdError``."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise InvalidJobIdError(f"job id {job_id!r} must be 1-80 characters of letters, digits, _ and -")
    return job_id


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed condition saw (``ReturnValuesOnConditionCheckFailure=ALL_OLD``); None if absent."""
    item: Any = exc.response.get("Item")
    return item or None


_NAMES = {
    "#s": "status",
    "#cp": "checkpoint",
    "#next": "next_chunk",
    "#progress": "progress",
    "#ms": "processing_ms",
}


class LongRunningJobStore:
    """Jobs of one ``kind``, one item per ``job_id`` (the table of ``LONG_RUNNING_JOBS_TABLE_NAME`` by default).

    ``failure_messages``: what callers are told of a failure, by code (``timeout``, ``failed``)."""

    def __init__(
        self,
        table: str | None = None,
        client: DynamoDBClient | None = None,
        *,
        kind: str = "job",
        failure_messages: Mapping[str, str] = DEFAULT_FAILURE_MESSAGES,
    ) -> None:
        self._table = table
        self._client = client
        self.kind = kind
        self.failure_messages = failure_messages

    @property
    def table(self) -> str:
        return self._table or load(LongRunningJobsSettings).jobs_table

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.client("dynamodb")

    def view(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """The job as callers see it, from its item as plain Python."""
        return job_view({"kind": self.kind, **job}, failure_messages=self.failure_messages)

    def public_failure(self, error: Mapping[str, Any]) -> dict[str, str]:
        return public_failure(error, self.failure_messages)

    # -- the caller's side -----------------------------------------------------------------------

    def create(self, job_id: str, request: BaseModel) -> dict[str, Any]:
        """Create a QUEUED job; if ``job_id`` exists already, that job is returned unchanged.

        ``request`` is what the caller chose: its fields are the job's ``params``, except a
        ``callback_url``, which is kept in the job's webhook section."""
        check_job_id(job_id)
        callback_url = getattr(request, CALLBACK_URL_FIELD, None)
        now = iso(utc_now())
        item: dict[str, Any] = {
            "job_id": job_id,
            "kind": self.kind,
            "status": LongRunningStatus.QUEUED.value,
            "params": request.model_dump(exclude={CALLBACK_URL_FIELD}),
            "created_at": now,
            "runs": 0,
            "processing_ms": 0,
            "progress": Progress(updated_at=now).as_dict(),
            "checkpoint": Checkpoint().as_item(),
        }
        if callback_url is not None:  # delivered_at is added once it is
            item["webhook"] = {
                "callback_url": callback_url,
                "status": WebhookStatus.PENDING.value,
                "attempts": [],
            }
        try:
            self.client.put_item(
                TableName=self.table,
                Item={key: attribute_value(value) for key, value in item.items()},
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing = self.get(job_id)
            if existing is None:  # created and deleted in between: nothing sensible to return
                raise
            return existing
        return self.view(item)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as callers see it, or None."""
        item = self.read(job_id)
        return None if item is None else self.view(item)

    def read(self, job_id: str) -> dict[str, Any] | None:
        """The job's whole item as plain Python (the resume key included), or None."""
        response = self.client.get_item(
            TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        return from_item(response["Item"]) if "Item" in response else None

    # -- the worker's side -----------------------------------------------------------------------

    def begin_run(self, job_id: str) -> dict[str, Any]:
        """Count a run and mark the job RUNNING; returns the whole item (terminal ones unchanged)."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :running, started_at = if_not_exists(started_at, :now) "
                "ADD runs :one",
                ConditionExpression="#s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": {"S": LongRunningStatus.RUNNING.value},
                    ":queued": {"S": LongRunningStatus.QUEUED.value},
                    ":now": {"S": iso(utc_now())},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = _old_item(exc)
            if not old:
                raise UnknownJobError(f"there is no job {job_id!r}") from exc
            return from_item(old)  # SUCCEEDED or FAILED: the caller does no work
        return from_item(response["Attributes"])

    def record_total(self, job_id: str, progress: Progress) -> None:
        self._fenced_update(
            job_id, "SET #progress = :progress", {":progress": attribute_value(progress.as_dict())},
            expected_chunk=None,
        )  # fmt: skip

    def record_chunk(
        self,
        job_id: str,
        *,
        expected_chunk: int,
        checkpoint: Checkpoint,
        progress: Progress,
        processing_ms: int,
    ) -> None:
        """Move the checkpoint on from ``expected_chunk``; ``CheckpointConflictError`` if it is not there."""
        self._fenced_update(
            job_id,
            "SET #cp = :checkpoint, #progress = :progress, #ms = :ms",
            {
                ":checkpoint": attribute_value(checkpoint.as_item()),
                ":progress": attribute_value(progress.as_dict()),
                ":ms": {"N": str(processing_ms)},
            },
            expected_chunk=expected_chunk,
        )

    def succeed(
        self,
        job_id: str,
        *,
        expected_chunk: int,
        result: Mapping[str, Any],
        progress: Progress,
        processing_ms: int,
    ) -> dict[str, Any]:
        """Mark the job SUCCEEDED with its result; if a concurrent run already did, its item is returned."""
        try:
            return self._fenced_update(
                job_id,
                "SET #s = :succeeded, #result = :result, #progress = :progress, #ms = :ms, finished_at = :now",
                {
                    ":succeeded": {"S": LongRunningStatus.SUCCEEDED.value},
                    ":result": attribute_value(dict(result)),
                    ":progress": attribute_value(progress.as_dict()),
                    ":ms": {"N": str(processing_ms)},
                    ":now": {"S": iso(utc_now())},
                },
                expected_chunk=expected_chunk,
                names={"#result": "result"},
            )
        except CheckpointConflictError as conflict:
            if conflict.found.get("status") == LongRunningStatus.SUCCEEDED:
                return conflict.found
            raise

    def fail(self, job_id: str, error: Mapping[str, Any]) -> dict[str, Any]:
        """Mark a QUEUED or RUNNING job FAILED, keeping only the public form of ``error`` (what Step
        Functions caught); a job that already ended is returned unchanged."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :failed, #error = :error, finished_at = :now",
                ConditionExpression="#s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "status", "#error": "error"},
                ExpressionAttributeValues={
                    ":failed": {"S": LongRunningStatus.FAILED.value},
                    ":queued": {"S": LongRunningStatus.QUEUED.value},
                    ":running": {"S": LongRunningStatus.RUNNING.value},
                    ":error": attribute_value(self.public_failure(error)),
                    ":now": {"S": iso(utc_now())},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = _old_item(exc)
            if not old:
                raise UnknownJobError(f"there is no job {job_id!r}") from exc
            job = self.view(from_item(old))
            logger.warning("job had already ended", extra={"job_id": job_id, "status": job["status"]})
            return job
        return self.view(from_item(response["Attributes"]))

    # -- the webhook section ---------------------------------------------------------------------

    def mark_webhook_scheduled(self, job_id: str) -> bool:
        """pending -> scheduled once the first delivery is queued; False if it had moved on already."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #wh.#ws = :scheduled",
                ConditionExpression="#wh.#ws = :pending",
                ExpressionAttributeNames={"#wh": "webhook", "#ws": "status"},
                ExpressionAttributeValues={
                    ":scheduled": {"S": WebhookStatus.SCHEDULED.value},
                    ":pending": {"S": WebhookStatus.PENDING.value},
                },
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def record_webhook_attempt(
        self,
        job_id: str,
        attempt: DeliveryAttempt,
        status: WebhookStatus | str,
        delivered_at: str | None = None,
    ) -> bool:
        """Append a delivery attempt and set the webhook status.

        Fenced on the attempt number: attempt n is recorded only while fewer than n are, so a
        redelivered attempt cannot be recorded twice (False then; ``UnknownJobError`` if there is no job)."""
        record = {**attempt.as_dict(), "at": attempt.at or iso(utc_now())}
        expression = "SET #wh.#attempts = list_append(#wh.#attempts, :record), #wh.#ws = :status"
        values = {
            ":record": attribute_value([record]),
            ":status": {"S": WebhookStatus(status).value},
            ":attempt": {"N": str(attempt.attempt)},
        }
        if delivered_at is not None:
            expression += ", #wh.delivered_at = :delivered_at"
            values[":delivered_at"] = {"S": delivered_at}
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#wh) AND size(#wh.#attempts) < :attempt",
                ExpressionAttributeNames={"#wh": "webhook", "#ws": "status", "#attempts": "attempts"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            if not _old_item(exc):
                raise UnknownJobError(f"there is no job {job_id!r}") from exc
            logger.info(
                "webhook attempt already recorded", extra={"job_id": job_id, "attempt": attempt.attempt}
            )
            return False
        return True

    def _fenced_update(
        self,
        job_id: str,
        expression: str,
        values: dict[str, Any],
        *,
        expected_chunk: int | None,
        names: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An update that applies only while the job is RUNNING at ``expected_chunk`` (if given)."""
        condition = "#s = :running_fence"
        values = {**values, ":running_fence": {"S": LongRunningStatus.RUNNING.value}}
        if expected_chunk is not None:
            condition += " AND #cp.#next = :expected_chunk"
            values[":expected_chunk"] = {"N": str(expected_chunk)}
        used_names = {
            name: value for name, value in _NAMES.items() if name in expression or name in condition
        }
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={**used_names, **(names or {})},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = from_item(_old_item(exc) or {})
            stored = Checkpoint.from_item(old.get("checkpoint"))
            raise CheckpointConflictError(
                f"job {job_id!r} moved on without this run: expected it RUNNING at chunk "
                f"{expected_chunk}, found {old.get('status', 'no job')} at chunk {stored.next_chunk}",
                found=old,
            ) from exc
        return from_item(response["Attributes"])
