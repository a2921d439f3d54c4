"""Report exports: the example's long-running job, on ``asyncstack.runtime.long_running``.

An export scans the analytics table page by page (``Limit = chunk_size``), each page one chunk
written as its own CSV part, ``exports/<job_id>/parts/<chunk:06d>.csv``; the framework's runner
checkpoints after each part (the scan's LastEvaluatedKey), so a crash redoes one chunk from the same
start key and overwrites the same part, and a redo can never duplicate rows. When the scan is
complete the parts are concatenated, in chunk order and after one header line, into
``exports/<job_id>/report.csv``; once the job is SUCCEEDED the parts are deleted (a crash before
that leaves parts behind, which the results bucket's lifecycle rule expires).

A job may carry a ``callback_url``: when it ends, the runner queues a signed ``export.completed`` /
``export.failed`` webhook (``shared.webhook_delivery`` names the events).

Limit: the report is assembled in memory (parts read, one PutObject), so it must fit in the
function's memory with room to spare, in practice up to about a tenth of it (~100 MB at 1 GB).
Beyond that, assemble with a multipart upload (UploadPartCopy of parts of at least 5 MiB).
The total is counted with a Scan ``Select=COUNT`` in the first run, which is fine for tables a
single invocation can count; bigger tables would need an estimate (DescribeTable's ItemCount).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from asyncstack.runtime import aws, long_running
from asyncstack.runtime.jobs import JobScheduler
from asyncstack.runtime.long_running import (
    DEFAULT_MARGIN_MS,
    Chunk,
    LongRunningJobStore,
    LongRunningStatus,
    LongRunningWorkerSettings,
    RemainingTime,
    check_job_id,
)
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from asyncstack.runtime.ssrf import MAX_URL_LENGTH, check_callback_url, insecure_allowed
from shared.config import ExportSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "COLUMNS",
    "EXPORT_PREFIX",
    "FAILURE_MESSAGES",
    "KIND",
    "ExportJobs",
    "ExportRequest",
    "ExportStatus",
    "ExportWork",
    "fail_export",
    "handle",
    "new_job_id",
    "part_key",
    "report_key",
    "run_export",
    "start_export",
]

KIND = "report_export"
COLUMNS = ("event_id", "type", "order_id", "customer_id", "total_cents", "units", "occurred_at")
# Where exports write in the long-running jobs' results bucket; the stack grants the worker this prefix.
EXPORT_PREFIX = "exports/"
S3_DELETE_LIMIT = 1_000  # keys per DeleteObjects call
# What API clients and webhook receivers are told of a failure: a stable code and a generic sentence.
FAILURE_MESSAGES = {
    "timeout": "The export did not finish in time.",
    "failed": "The export failed and was not completed. Quote the job id when asking for help.",
}

ExportStatus = LongRunningStatus


class ExportRequest(BaseModel):
    """What a caller may choose about an export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_size: int = Field(default=100, ge=1, le=1000)
    # Called with a signed export.completed / export.failed event when the job ends.
    callback_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _json_integer(cls, value: object) -> object:
        # The OpenAPI document says `integer`: lax pydantic also took true as 1 and "5" as 5.
        if isinstance(value, bool | str | bytes):
            raise ValueError(f"must be an integer, not {type(value).__name__}")
        return value

    @field_validator("callback_url")
    @classmethod
    def _callable_from_here(cls, url: str | None) -> str | None:
        # The addresses are checked again at each delivery: DNS can change after this.
        return None if url is None else check_callback_url(url, allow_insecure=insecure_allowed())


class ExportJobs(LongRunningJobStore):
    """Export jobs in the long-running jobs' table (``LONG_RUNNING_JOBS_TABLE_NAME`` by default)."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client, kind=KIND, failure_messages=FAILURE_MESSAGES)


def new_job_id() -> str:
    """A fresh export job id (also the execution name): ``exp-`` and 32 hex characters."""
    return long_running.new_job_id("exp")


def part_key(job_id: str, chunk: int) -> str:
    return f"{EXPORT_PREFIX}{job_id}/parts/{chunk:06d}.csv"


def report_key(job_id: str) -> str:
    return f"{EXPORT_PREFIX}{job_id}/report.csv"


# -- the work ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class ExportWork:
    """One export as the runner's ``ChunkedWork``: a scan page per chunk, a CSV part per page."""

    job_id: str
    chunk_size: int
    source_table: str
    bucket: str
    s3: Any
    dynamodb: Any

    def count(self) -> int:
        total = 0
        params: dict[str, Any] = {"TableName": self.source_table, "Select": "COUNT"}
        while True:
            page = self.dynamodb.scan(**params)
            total += page["Count"]
            if not page.get("LastEvaluatedKey"):
                return total
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def chunk(self, number: int, start: Any) -> Chunk:
        params: dict[str, Any] = {"TableName": self.source_table, "Limit": self.chunk_size}
        if start is not None:
            params["ExclusiveStartKey"] = start
        page = self.dynamodb.scan(**params)
        items = page.get("Items", [])
        self.s3.put_object(
            Bucket=self.bucket,
            Key=part_key(self.job_id, number),
            Body=_csv([[_cell(item.get(column)) for column in COLUMNS] for item in items]),
            ContentType="text/csv",
        )
        return Chunk(rows=len(items), next_key=page.get("LastEvaluatedKey"))

    def finish(self, chunks: int, rows: int) -> dict[str, Any]:
        body = _csv([list(COLUMNS)]) + b"".join(
            self.s3.get_object(Bucket=self.bucket, Key=part_key(self.job_id, n))["Body"].read()
            for n in range(chunks)
        )
        key = report_key(self.job_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/csv")
        return {"bucket": self.bucket, "key": key, "rows": rows, "bytes": len(body)}

    def clean_up(self, chunks: int) -> None:
        """Best effort: the report is complete, a leftover part only costs storage."""
        keys = [part_key(self.job_id, n) for n in range(chunks)]
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


# -- the module-level API ----------------------------------------------------------------------


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
    return long_running.start_job(
        job_id, request, state_machine_arn=state_machine_arn, jobs=jobs or ExportJobs(), sfn_client=sfn_client
    )


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
    margin_ms: int = DEFAULT_MARGIN_MS,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Advance the export as far as this invocation's time allows; ``done`` False means call again.

    What is not passed comes from the environment (``ExportSettings``, the long-running worker's)."""
    dynamodb = dynamodb or aws.client("dynamodb")

    def work(job_id: str, params: Mapping[str, Any]) -> ExportWork:
        return ExportWork(
            job_id=job_id,
            chunk_size=ExportRequest.model_validate(params).chunk_size,
            source_table=source_table or load(ExportSettings).source_table,
            bucket=bucket or load(LongRunningWorkerSettings).results_bucket,
            s3=s3 or aws.client("s3"),
            dynamodb=dynamodb,
        )

    return long_running.run_job(
        job_id,
        context,
        work,
        jobs=jobs if jobs is not None else ExportJobs(client=dynamodb),
        clock=clock,
        margin_ms=margin_ms,
        webhook_scheduler=webhook_scheduler,
    )


def fail_export(
    job_id: str,
    error: Mapping[str, Any],
    *,
    jobs: ExportJobs | None = None,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Record the failure Step Functions caught (``{"Error", "Cause"}``) and return the job."""
    return long_running.fail_job(
        job_id, error, jobs=jobs or ExportJobs(), webhook_scheduler=webhook_scheduler
    )


def handle(event: Mapping[str, Any], context: RemainingTime) -> dict[str, Any]:
    """The export worker's entry point: ``{"action": "run" | "fail", "job_id": ..., "error": {...}}``."""
    margin_ms = load(LongRunningWorkerSettings).margin_ms
    return long_running.handle_action(
        event,
        context,
        run=lambda job_id, invocation: run_export(job_id, invocation, margin_ms=margin_ms),
        fail=fail_export,
    )
