"""Report exports: a long-running job done in chunks, with progress, checkpoints and crash recovery.

A Step Functions Standard state machine drives the worker: it invokes ``run`` (``handle``) until
the result says ``done``, retries crashed or timed-out invocations, and on a final failure invokes
``fail``. A run therefore never needs to finish the job; it only has to leave it resumable:

* each chunk (one page of a paginated Scan of the analytics table, ``Limit = chunk_size``) is
  written as its own part object, ``exports/<job_id>/parts/<chunk:06d>.csv``, and THEN one
  UpdateItem records the checkpoint (the scan's LastEvaluatedKey, the next chunk number, the rows
  so far) with the progress. A crash between the two redoes that one chunk from the same start key
  and overwrites the same part, so a redo can never duplicate rows;
* the checkpoint update is fenced: it only succeeds if the stored chunk number is the one this run
  started the chunk from (and the job is still RUNNING). A stale run, one that a retry overtook,
  gets ``CheckpointConflict`` and stops instead of writing over newer progress;
* when the scan is complete the parts are concatenated, in chunk order and after one header line,
  into ``exports/<job_id>/report.csv``, the job is marked SUCCEEDED (fenced the same way) and only
  then are the parts deleted: a crash at any point before SUCCEEDED finds every part still there.
  A crash between SUCCEEDED and the deletion leaves parts behind (harmless; a lifecycle rule on
  the bucket can expire them).

A job may carry a ``callback_url``: when it ends (SUCCEEDED or FAILED) the worker queues the first
signed webhook delivery as a delayed job (``shared.webhook_delivery`` sends it and its retries), and
the job's ``webhook`` section records every attempt. Queueing is idempotent by the delivery's job
key, so a finish that is retried (the run's result was lost, the fail step ran twice) queues once.

Limit: the report is assembled in memory (parts read, one PutObject), so it must fit in the
function's memory with room to spare, in practice up to about a tenth of it (~100 MB at 1 GB).
Beyond that, assemble with a multipart upload (UploadPartCopy of parts of at least 5 MiB).
The job total is counted with a Scan ``Select=COUNT`` in the first run, which is fine for tables
a single invocation can count; bigger tables would need an estimate (DescribeTable's ItemCount).
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from asyncstack.runtime import aws
from asyncstack.runtime.errors import NonRetryableError, TransientError
from asyncstack.runtime.jobs import JobScheduler, ScheduledJob, schedule_job
from asyncstack.runtime.observability import logger
from asyncstack.runtime.progress import Progress
from asyncstack.runtime.settings import table_name
from asyncstack.runtime.ssrf import MAX_URL_LENGTH, check_callback_url, insecure_allowed
from asyncstack.runtime.workflows import transient_aws_errors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "COLUMNS",
    "DEFAULT_MARGIN_MS",
    "FIRST_DELIVERY_DELAY",
    "JOB_ID_PATTERN",
    "KIND",
    "WEBHOOK_JOB_TYPE",
    "CheckpointConflict",
    "ExportJobs",
    "ExportRequest",
    "ExportStatus",
    "InvalidJobId",
    "RemainingTime",
    "UnknownAction",
    "UnknownJob",
    "WebhookStatus",
    "check_job_id",
    "fail_export",
    "handle",
    "new_job_id",
    "part_key",
    "queue_webhook",
    "report_key",
    "run_export",
    "start_export",
    "view_of_item",
    "webhook_job_key",
]

KIND = "report_export"
COLUMNS = ("event_id", "type", "order_id", "customer_id", "total_cents", "units", "occurred_at")
# Left for the checkpoint write and the return, on top of twice the slowest chunk of the run.
DEFAULT_MARGIN_MS = 5_000
# Step Functions execution names: 1..80 characters; this subset is also safe in S3 keys and URLs.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
S3_DELETE_LIMIT = 1_000  # keys per DeleteObjects call
# What API clients and webhook receivers are told of a failure: a stable code and a generic sentence.
# The Cause Step Functions caught (the Lambda error with its stack trace, ARNs, table names, source
# paths) goes to the log only.
FAILURE_MESSAGES = {
    "timeout": "The export did not finish in time.",
    "failed": "The export failed and was not completed. Quote the job id when asking for help.",
}
_TIMEOUT_ERRORS = frozenset({"States.Timeout", "Sandbox.Timedout"})
# The delayed job that delivers a finished job's webhook (shared.webhook_delivery runs it).
WEBHOOK_JOB_TYPE = "webhook.deliver"
FIRST_DELIVERY_DELAY = timedelta(seconds=1)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# -- errors ------------------------------------------------------------------------------------


class UnknownJob(NonRetryableError):
    """No export job has this id: no retry will make one appear."""

    error_type = "UnknownJob"


class CheckpointConflict(NonRetryableError):
    """The job moved on without this run (a retry overtook it, or it was failed): stop, write nothing."""

    error_type = "CheckpointConflict"

    def __init__(self, message: str, *, found: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.found: dict[str, Any] = dict(found or {})  # the job as the failed condition saw it


class UnknownAction(NonRetryableError):
    """The worker was invoked with an action it does not have (a state machine definition bug)."""

    error_type = "UnknownAction"


class InvalidJobId(NonRetryableError, ValueError):
    """The job id cannot name a Step Functions execution; a ``ValueError`` so APIs answer 400."""

    error_type = "InvalidJobId"


# -- values ------------------------------------------------------------------------------------


class ExportStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


_TERMINAL = frozenset({ExportStatus.SUCCEEDED, ExportStatus.FAILED})


class WebhookStatus(enum.StrEnum):
    PENDING = "pending"  # the job has not ended yet
    SCHEDULED = "scheduled"  # a delivery attempt is queued
    DELIVERED = "delivered"
    CALLBACK_FAILED = "callback_failed"  # every attempt failed, or the callback became unsafe


class ExportRequest(BaseModel):
    """What a caller may choose about an export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_size: int = Field(default=100, ge=1, le=1000)
    # Called with a signed export.completed / export.failed event when the job ends.
    callback_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)

    @field_validator("callback_url")
    @classmethod
    def _callable_from_here(cls, url: str | None) -> str | None:
        # The addresses are checked again at each delivery: DNS can change after this.
        return None if url is None else check_callback_url(url, allow_insecure=insecure_allowed())


class RemainingTime(Protocol):
    """The part of the Lambda context a run needs."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class _Checkpoint:
    """Where the next run resumes: the chunk to write next and the scan key to start it from."""

    next_chunk: int = 0
    last_key: dict[str, Any] | None = None
    rows: int = 0

    @property
    def scan_finished(self) -> bool:
        # Every page but the last has a LastEvaluatedKey, so "a chunk done and no key" is the end.
        return self.next_chunk > 0 and self.last_key is None

    def as_item(self) -> dict[str, Any]:
        last_key = None if self.last_key is None else json.dumps(self.last_key, sort_keys=True)
        return {"next_chunk": self.next_chunk, "last_key": last_key, "rows": self.rows}

    @classmethod
    def from_item(cls, data: Mapping[str, Any] | None) -> _Checkpoint:
        data = data or {}
        last_key = data.get("last_key")
        return cls(
            next_chunk=int(data.get("next_chunk") or 0),
            last_key=json.loads(last_key) if last_key else None,
            rows=int(data.get("rows") or 0),
        )


def new_job_id() -> str:
    """A fresh job id (also the execution name): ``exp-`` and 32 hex characters."""
    return f"exp-{uuid.uuid4().hex}"


def check_job_id(job_id: object) -> str:
    """``job_id`` if it can name a Step Functions execution, else ``InvalidJobId``."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise InvalidJobId(f"job id {job_id!r} must be 1-80 characters of letters, digits, _ and -")
    return job_id


def part_key(job_id: str, chunk: int) -> str:
    return f"exports/{job_id}/parts/{chunk:06d}.csv"


def report_key(job_id: str) -> str:
    return f"exports/{job_id}/report.csv"


def webhook_job_key(job_id: str, attempt: int) -> str:
    """The delayed-job key of a delivery attempt: one job per attempt, so each is queued once."""
    return f"{job_id}.webhook.{attempt}"


# -- DynamoDB item conversion ------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _to_decimals(value: Any) -> Any:
    """TypeSerializer refuses floats (they are inexact); their shortest repr is what we mean."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {key: _to_decimals(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """Plain Python from a deserialized item: numbers as int or float, not Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    return value


def _av(value: Any) -> Any:
    return _serializer.serialize(_to_decimals(value))


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed condition saw (``ReturnValuesOnConditionCheckFailure=ALL_OLD``); None if absent."""
    item: Any = exc.response.get("Item")
    return item or None


def _view(item: Mapping[str, Any]) -> dict[str, Any]:
    """The job as callers see it: plain values, the scan key left out (it is an internal detail)."""
    checkpoint = _Checkpoint.from_item(item.get("checkpoint"))
    return {
        "job_id": item["job_id"],
        "kind": item.get("kind", KIND),
        "status": item.get("status"),
        "params": item.get("params", {}),
        "progress": Progress.from_dict(item.get("progress")).as_dict(),
        "result": item.get("result"),
        "error": None if item.get("error") is None else public_failure(item["error"]),
        "runs": int(item.get("runs") or 0),
        "processing_ms": int(item.get("processing_ms") or 0),
        "checkpoint": {"next_chunk": checkpoint.next_chunk, "rows": checkpoint.rows},
        "created_at": item.get("created_at"),
        "started_at": item.get("started_at"),
        "finished_at": item.get("finished_at"),
        "webhook": _webhook_view(item.get("webhook")),
    }


def public_failure(error: Mapping[str, Any]) -> dict[str, str]:
    """``{"code", "message"}`` for a failure as recorded (or as Step Functions caught it: ``Error``)."""
    code = error.get("code")
    if code not in FAILURE_MESSAGES:
        code = "timeout" if (error.get("Error") or error.get("error")) in _TIMEOUT_ERRORS else "failed"
    return {"code": code, "message": FAILURE_MESSAGES[code]}


def view_of_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The job as callers see it, from a jobs-table item in DynamoDB's attribute-value form."""
    return _view(_from_item(item))


def _webhook_view(webhook: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not webhook:
        return None
    return {
        "callback_url": webhook.get("callback_url"),
        "status": webhook.get("status"),
        "attempts": [
            {
                "attempt": int(attempt.get("attempt") or 0),
                "at": attempt.get("at"),
                "status_code": attempt.get("status_code"),
                "error": attempt.get("error"),
            }
            for attempt in webhook.get("attempts") or []
        ],
        "delivered_at": webhook.get("delivered_at"),
    }


# -- the jobs table ----------------------------------------------------------------------------

_NAMES = {
    "#s": "status",
    "#cp": "checkpoint",
    "#next": "next_chunk",
    "#progress": "progress",
    "#ms": "processing_ms",
}


class ExportJobs:
    """Export jobs, one item per ``job_id`` (the table of ``EXPORT_JOBS_TABLE_NAME`` by default)."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self._table = table
        self._client = client

    @property
    def table(self) -> str:
        return self._table or table_name("EXPORT_JOBS_TABLE_NAME")

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.client("dynamodb")

    def create(self, job_id: str, request: ExportRequest) -> dict[str, Any]:
        """Create a QUEUED job; if ``job_id`` exists already, that job is returned unchanged."""
        check_job_id(job_id)
        now = _iso(_utc_now())
        item = {
            "job_id": job_id,
            "kind": KIND,
            "status": ExportStatus.QUEUED.value,
            "params": request.model_dump(exclude={"callback_url"}),
            "created_at": now,
            "runs": 0,
            "processing_ms": 0,
            "progress": Progress(updated_at=now).as_dict(),
            "checkpoint": _Checkpoint().as_item(),
        }
        if request.callback_url is not None:
            item["webhook"] = {
                "callback_url": request.callback_url,
                "status": WebhookStatus.PENDING.value,
                "attempts": [],
            }
        try:
            self.client.put_item(
                TableName=self.table,
                Item={key: _av(value) for key, value in item.items()},
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing = self.get(job_id)
            if existing is None:  # created and deleted in between: nothing sensible to return
                raise
            return existing
        return _view(item)

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self._read(job_id)
        return None if item is None else _view(item)

    def _read(self, job_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        return _from_item(response["Item"]) if "Item" in response else None

    # -- worker side -------------------------------------------------------------------------

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
                    ":running": {"S": ExportStatus.RUNNING.value},
                    ":queued": {"S": ExportStatus.QUEUED.value},
                    ":now": {"S": _iso(_utc_now())},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = _old_item(exc)
            if not old:
                raise UnknownJob(f"there is no export job {job_id!r}") from exc
            return _from_item(old)  # SUCCEEDED or FAILED: the caller does no work
        return _from_item(response["Attributes"])

    def record_total(self, job_id: str, progress: Progress) -> None:
        self._fenced_update(
            job_id,
            "SET #progress = :progress",
            {":progress": _av(progress.as_dict())},
            expected_chunk=None,
        )

    def record_chunk(
        self,
        job_id: str,
        *,
        expected_chunk: int,
        checkpoint: _Checkpoint,
        progress: Progress,
        processing_ms: int,
    ) -> None:
        """Move the checkpoint on from ``expected_chunk``; ``CheckpointConflict`` if it is not there."""
        self._fenced_update(
            job_id,
            "SET #cp = :checkpoint, #progress = :progress, #ms = :ms",
            {
                ":checkpoint": _av(checkpoint.as_item()),
                ":progress": _av(progress.as_dict()),
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
        """Mark the job SUCCEEDED; if a concurrent run already did, its item is returned."""
        try:
            item = self._fenced_update(
                job_id,
                "SET #s = :succeeded, #result = :result, #progress = :progress, #ms = :ms, "
                "finished_at = :now",
                {
                    ":succeeded": {"S": ExportStatus.SUCCEEDED.value},
                    ":result": _av(dict(result)),
                    ":progress": _av(progress.as_dict()),
                    ":ms": {"N": str(processing_ms)},
                    ":now": {"S": _iso(_utc_now())},
                },
                expected_chunk=expected_chunk,
                names={"#result": "result"},
            )
        except CheckpointConflict as conflict:
            if conflict.found.get("status") == ExportStatus.SUCCEEDED:
                return conflict.found
            raise
        return item

    def fail(self, job_id: str, error: Mapping[str, Any]) -> dict[str, Any]:
        """Mark a QUEUED or RUNNING job FAILED; a job that already ended is returned unchanged."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :failed, #error = :error, finished_at = :now",
                ConditionExpression="#s IN (:queued, :running)",
                ExpressionAttributeNames={"#s": "status", "#error": "error"},
                ExpressionAttributeValues={
                    ":failed": {"S": ExportStatus.FAILED.value},
                    ":queued": {"S": ExportStatus.QUEUED.value},
                    ":running": {"S": ExportStatus.RUNNING.value},
                    ":error": _av(dict(error)),
                    ":now": {"S": _iso(_utc_now())},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = _old_item(exc)
            if not old:
                raise UnknownJob(f"there is no export job {job_id!r}") from exc
            job = _view(_from_item(old))
            logger.warning("export job had already ended", extra={"job_id": job_id, "status": job["status"]})
            return job
        return _view(_from_item(response["Attributes"]))

    # -- webhook side ------------------------------------------------------------------------

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
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def record_webhook_attempt(
        self,
        job_id: str,
        attempt_record: Mapping[str, Any],
        status: WebhookStatus | str,
        delivered_at: str | None = None,
    ) -> bool:
        """Append a delivery attempt ``{attempt, at, status_code, error}`` and set the webhook status.

        Fenced on the attempt number: attempt n is recorded only while fewer than n are, so a
        redelivered attempt cannot be recorded twice (False then; ``UnknownJob`` if there is no job)."""
        attempt = int(attempt_record["attempt"])
        record = {
            "attempt": attempt,
            "at": attempt_record.get("at") or _iso(_utc_now()),
            "status_code": attempt_record.get("status_code"),
            "error": attempt_record.get("error"),
        }
        expression = "SET #wh.#attempts = list_append(#wh.#attempts, :record), #wh.#ws = :status"
        values = {
            ":record": _av([record]),
            ":status": {"S": WebhookStatus(status).value},
            ":attempt": {"N": str(attempt)},
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
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            if not _old_item(exc):
                raise UnknownJob(f"there is no export job {job_id!r}") from exc
            logger.info("webhook attempt already recorded", extra={"job_id": job_id, "attempt": attempt})
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
        values = {**values, ":running_fence": {"S": ExportStatus.RUNNING.value}}
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
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = _from_item(_old_item(exc) or {})
            stored = _Checkpoint.from_item(old.get("checkpoint"))
            raise CheckpointConflict(
                f"export job {job_id!r} moved on without this run: expected it RUNNING at chunk "
                f"{expected_chunk}, found {old.get('status', 'no job')} at chunk {stored.next_chunk}",
                found=old,
            ) from exc
        return _from_item(response["Attributes"])


# -- a run -------------------------------------------------------------------------------------


def _margin_ms() -> int:
    raw = os.environ.get("EXPORT_MARGIN_MS", "").strip()
    if not raw:
        return DEFAULT_MARGIN_MS
    try:
        margin = int(raw)
    except ValueError:
        margin = -1
    if margin < 0:
        raise RuntimeError(f"EXPORT_MARGIN_MS must be a whole number of milliseconds >= 0, got {raw!r}")
    return margin


def _cell(value: Mapping[str, Any] | None) -> str:
    if not value:
        return ""
    if "S" in value:
        return str(value["S"])
    if "N" in value:
        return str(value["N"])
    return ""  # the analytics rows only hold strings and numbers in these columns


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _outcome(job_id: str, status: str, progress: Progress, *, done: bool) -> dict[str, Any]:
    """What the state machine gets back; it loops on ``done``."""
    return {
        "job_id": job_id,
        "done": done,
        "status": ExportStatus(status).value,
        "progress": progress.as_dict(),
    }


@dataclass
class _ExportRun:
    """One invocation's work on a job: chunks until the time budget runs out, then the report."""

    job_id: str
    chunk_size: int
    checkpoint: _Checkpoint
    progress: Progress
    processing_ms: int
    jobs: ExportJobs
    source_table: str
    bucket: str
    s3: Any
    dynamodb: DynamoDBClient
    clock: Callable[[], float]
    margin_ms: int
    webhook_scheduler: JobScheduler | None = None
    slowest_ms: int = field(default=0)
    chunks: int = field(default=0)

    def execute(self, context: RemainingTime) -> dict[str, Any]:
        if self.progress.total is None:
            self._count()
        # At least one step per run whatever the clock says, so the state machine's loop always advances.
        while not self.checkpoint.scan_finished:
            if self.chunks and not self._time_left(context):
                return _outcome(self.job_id, ExportStatus.RUNNING, self.progress, done=False)
            self._chunk()
        if self.chunks and not self._time_left(context):
            return _outcome(self.job_id, ExportStatus.RUNNING, self.progress, done=False)
        return self._finish()

    def _time_left(self, context: RemainingTime) -> bool:
        return context.get_remaining_time_in_millis() > self.margin_ms + 2 * self.slowest_ms

    def _count(self) -> None:
        total = 0
        params: dict[str, Any] = {"TableName": self.source_table, "Select": "COUNT"}
        while True:
            page = self.dynamodb.scan(**params)
            total += page["Count"]
            if not page.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self.progress = self.progress.with_total(total, now=_utc_now())
        self.jobs.record_total(self.job_id, self.progress)

    def _chunk(self) -> None:
        started = self.clock()
        number = self.checkpoint.next_chunk
        params: dict[str, Any] = {"TableName": self.source_table, "Limit": self.chunk_size}
        if self.checkpoint.last_key is not None:
            params["ExclusiveStartKey"] = self.checkpoint.last_key
        page = self.dynamodb.scan(**params)
        items = page.get("Items", [])
        self.s3.put_object(
            Bucket=self.bucket,
            Key=part_key(self.job_id, number),
            Body=_csv([[_cell(item.get(column)) for column in COLUMNS] for item in items]),
            ContentType="text/csv",
        )
        checkpoint = _Checkpoint(
            next_chunk=number + 1,
            last_key=page.get("LastEvaluatedKey") or None,
            rows=self.checkpoint.rows + len(items),
        )
        processing_ms = self.processing_ms + _ms(self.clock() - started)
        progress = self.progress.after_chunk(
            current=checkpoint.rows, processing_ms=processing_ms, now=_utc_now()
        )
        self.jobs.record_chunk(
            self.job_id,
            expected_chunk=number,
            checkpoint=checkpoint,
            progress=progress,
            processing_ms=processing_ms,
        )
        self.checkpoint, self.progress, self.processing_ms = checkpoint, progress, processing_ms
        self.chunks += 1
        self.slowest_ms = max(self.slowest_ms, _ms(self.clock() - started))
        logger.info(
            "export chunk written",
            extra={"job_id": self.job_id, "chunk": number, "rows": len(items), **progress.as_dict()},
        )

    def _finish(self) -> dict[str, Any]:
        started = self.clock()
        parts = range(self.checkpoint.next_chunk)
        body = _csv([list(COLUMNS)]) + b"".join(
            self.s3.get_object(Bucket=self.bucket, Key=part_key(self.job_id, n))["Body"].read() for n in parts
        )
        key = report_key(self.job_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/csv")
        result = {"bucket": self.bucket, "key": key, "rows": self.checkpoint.rows, "bytes": len(body)}
        job = self.jobs.succeed(
            self.job_id,
            expected_chunk=self.checkpoint.next_chunk,
            result=result,
            progress=self.progress.finished(current=self.checkpoint.rows, now=_utc_now()),
            processing_ms=self.processing_ms + _ms(self.clock() - started),
        )
        queue_webhook(self.job_id, job, jobs=self.jobs, scheduler=self.webhook_scheduler)
        self._delete_parts(parts)
        logger.info("export finished", extra={"job_id": self.job_id, **result})
        return _outcome(self.job_id, job["status"], Progress.from_dict(job.get("progress")), done=True)

    def _delete_parts(self, parts: range) -> None:
        """Best effort: the report is complete, a leftover part only costs storage."""
        keys = [part_key(self.job_id, n) for n in parts]
        for start in range(0, len(keys), S3_DELETE_LIMIT):
            batch = keys[start : start + S3_DELETE_LIMIT]
            try:
                response = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except ClientError:
                logger.exception("could not delete export parts", extra={"job_id": self.job_id})
                return
            if response.get("Errors"):
                logger.warning(
                    "some export parts were not deleted",
                    extra={"job_id": self.job_id, "errors": response["Errors"][:10]},
                )


# -- webhooks ----------------------------------------------------------------------------------


def queue_webhook(
    job_id: str,
    job: Mapping[str, Any],
    *,
    jobs: ExportJobs | None = None,
    scheduler: JobScheduler | None = None,
) -> ScheduledJob | None:
    """Queue the first webhook delivery of an ended job that has a callback; once per job, however
    often it is called. AWS failures raise ``TransientError``, which the export workflow retries.

    ``job`` is the job as stored or viewed. The scheduler is the webhook deliveries' (the stack gives
    this worker their ``JOBS_*`` variables), built only here, so jobs without a callback need none."""
    webhook = job.get("webhook")
    if not webhook or job.get("status") not in _TERMINAL:
        return None
    try:
        scheduled = schedule_job(
            WEBHOOK_JOB_TYPE,
            {"job_id": job_id, "attempt": 1},
            key=webhook_job_key(job_id, 1),
            delay=FIRST_DELIVERY_DELAY,
            scheduler=scheduler if scheduler is not None else JobScheduler.from_environment(os.environ),
        )
        if webhook.get("status") == WebhookStatus.PENDING:
            (jobs if jobs is not None else ExportJobs()).mark_webhook_scheduled(job_id)
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"could not queue the webhook of export job {job_id}: {exc}") from exc
    logger.info(
        "webhook delivery queued" if scheduled.created else "webhook delivery was queued before",
        extra={"job_id": job_id, "job_key": scheduled.job_key},
    )
    return scheduled


# -- module-level API --------------------------------------------------------------------------


def start_export(
    job_id: str,
    request: ExportRequest | Mapping[str, Any],
    *,
    state_machine_arn: str,
    jobs: ExportJobs | None = None,
    sfn_client: Any = None,
) -> dict[str, Any]:
    """Create the job and start its execution (named ``job_id``); calling it again is harmless."""
    check_job_id(job_id)
    if not isinstance(request, ExportRequest):
        request = ExportRequest.model_validate(request)
    job = (jobs if jobs is not None else ExportJobs()).create(job_id, request)
    try:
        (sfn_client or aws.client("stepfunctions")).start_execution(
            stateMachineArn=state_machine_arn, name=job_id, input=json.dumps({"job_id": job_id})
        )
    except ClientError as exc:
        if _error_code(exc) != "ExecutionAlreadyExists":
            raise
        logger.info("export execution was started before", extra={"job_id": job_id})
    return job


def run_export(
    job_id: str,
    context: RemainingTime,
    *,
    jobs: ExportJobs | None = None,
    source_table: str | None = None,
    bucket: str | None = None,
    s3: Any = None,
    dynamodb: DynamoDBClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Advance the export as far as this invocation's time allows; ``done`` False means call again."""
    dynamodb = dynamodb or aws.client("dynamodb")
    jobs = jobs if jobs is not None else ExportJobs(client=dynamodb)
    item = jobs.begin_run(job_id)
    status = ExportStatus(item["status"])
    progress = Progress.from_dict(item.get("progress"))
    if status in _TERMINAL:  # e.g. the state machine retried an invocation that had finished the job
        logger.info("export job already ended", extra={"job_id": job_id, "status": status.value})
        # The invocation that finished it may have died before queueing the webhook: queue it (once).
        queue_webhook(job_id, item, jobs=jobs, scheduler=webhook_scheduler)
        return _outcome(job_id, status, progress, done=True)
    run = _ExportRun(
        job_id=job_id,
        chunk_size=ExportRequest.model_validate(item.get("params") or {}).chunk_size,
        checkpoint=_Checkpoint.from_item(item.get("checkpoint")),
        progress=progress,
        processing_ms=int(item.get("processing_ms") or 0),
        jobs=jobs,
        source_table=source_table or table_name("EXPORT_SOURCE_TABLE_NAME"),
        bucket=bucket or table_name("EXPORT_BUCKET_NAME"),
        s3=s3 or aws.client("s3"),
        dynamodb=dynamodb,
        clock=clock,
        margin_ms=_margin_ms(),
        webhook_scheduler=webhook_scheduler,
    )
    return run.execute(context)


def fail_export(
    job_id: str,
    error: Mapping[str, Any],
    *,
    jobs: ExportJobs | None = None,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Record the failure Step Functions caught (``{"Error", "Cause"}``) and return the job.

    The job keeps only the public form of the failure; the error and its cause are logged."""
    jobs = jobs if jobs is not None else ExportJobs()
    job = jobs.fail(job_id, public_failure(error))
    logger.warning(
        "export failed", extra={"job_id": job_id, "error": error.get("Error"), "cause": error.get("Cause")}
    )
    # Also when the job had already ended (a retried fail step, or a success before it): queued once.
    queue_webhook(job_id, job, jobs=jobs, scheduler=webhook_scheduler)
    return job


@transient_aws_errors
def handle(event: Mapping[str, Any], context: RemainingTime) -> dict[str, Any]:
    """The worker's entry point: ``{"action": "run" | "fail", "job_id": ..., "error": {...}}``."""
    action = event.get("action")
    if action == "run":
        return run_export(check_job_id(event.get("job_id")), context)
    if action == "fail":
        return fail_export(check_job_id(event.get("job_id")), event.get("error") or {})
    raise UnknownAction(f"export worker has no action {action!r}; expected 'run' or 'fail'")
