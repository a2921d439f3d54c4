"""The worker of a long-running job: runs its chunks until the invocation's deadline draws near.

A Step Functions Standard workflow (``asyncstack.cdk.LongRunningJobs``) invokes the worker with
``run`` until the answer says ``done``, retries crashed or timed-out invocations, and on a final
failure invokes ``fail``. A run therefore never needs to finish the job; it only has to leave it
resumable: each chunk's output is written (idempotently, under the chunk's number) and THEN one
fenced update records the checkpoint with the progress. A crash between the two redoes that one
chunk from the same start, overwriting the same output, so a redo never duplicates anything. When
every chunk is done the work assembles its result, the job is marked SUCCEEDED (fenced the same
way) and only then does the work clean up: a crash at any point before SUCCEEDED finds every
chunk's output still there.

What a job does is its ``ChunkedWork``: count what there is, do one chunk, assemble the result,
clean up. The job's total is counted once, in its first run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import Field

from asyncstack import contract
from asyncstack.runtime.jobs import JobScheduler
from asyncstack.runtime.long_running.checkpoint import Checkpoint
from asyncstack.runtime.long_running.errors import UnknownActionError
from asyncstack.runtime.long_running.progress import Progress
from asyncstack.runtime.long_running.store import (
    TERMINAL_STATUSES,
    LongRunningJobsSettings,
    LongRunningJobStore,
    LongRunningStatus,
    check_job_id,
)
from asyncstack.runtime.long_running.webhooks import queue_webhook
from asyncstack.runtime.observability import logger
from asyncstack.runtime.timestamps import utc_now
from asyncstack.runtime.workflows import transient_aws_errors

__all__ = [
    "DEFAULT_MARGIN_MS",
    "Chunk",
    "ChunkedWork",
    "LongRunningWorkerSettings",
    "RemainingTime",
    "WorkFactory",
    "fail_job",
    "handle_action",
    "run_job",
]

# Left for the checkpoint write and the return, on top of twice the slowest chunk of the run.
DEFAULT_MARGIN_MS = 5_000


class LongRunningWorkerSettings(LongRunningJobsSettings):
    """What ``asyncstack.cdk.LongRunningJobs`` tells its worker."""

    results_bucket: str = Field(validation_alias=contract.LONG_RUNNING_RESULTS_BUCKET, min_length=1)
    margin_ms: int = Field(default=DEFAULT_MARGIN_MS, validation_alias=contract.LONG_RUNNING_MARGIN_MS, ge=0)


class RemainingTime(Protocol):
    """The part of the Lambda context a run needs."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Chunk:
    """One chunk done: the rows it produced, and the key the next chunk starts from (None: that was the last)."""

    rows: int
    next_key: Any = None


class ChunkedWork(Protocol):
    """What one job does, chunk by chunk. Every method may be called again after a crash, so each must
    be safe to repeat: a chunk writes its output under its number, the result overwrites itself."""

    def count(self) -> int:
        """How many rows there are to do (for the progress bar; rows added later raise the total)."""
        ...

    def chunk(self, number: int, start: Any) -> Chunk:
        """Do chunk ``number``, starting at ``start`` (None for the first)."""
        ...

    def finish(self, chunks: int, rows: int) -> Mapping[str, Any]:
        """Assemble the result from the ``chunks`` chunks' outputs; returns what the job records as its result."""
        ...

    def clean_up(self, chunks: int) -> None:
        """Delete what only the assembly needed; best effort (the job has succeeded already)."""
        ...


# (job id, the job's params) -> its work, built once the run knows the job.
WorkFactory = Callable[[str, Mapping[str, Any]], ChunkedWork]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _outcome(job_id: str, status: str, progress: Progress, *, done: bool) -> dict[str, Any]:
    """What the workflow gets back; it loops on ``done``."""
    return {
        "job_id": job_id,
        contract.LONG_RUNNING_DONE_FIELD: done,
        "status": LongRunningStatus(status).value,
        "progress": progress.as_dict(),
    }


@dataclass
class _Run:
    """One invocation's work on a job: chunks until the time budget runs out, then the result."""

    job_id: str
    work: ChunkedWork
    checkpoint: Checkpoint
    progress: Progress
    processing_ms: int
    jobs: LongRunningJobStore
    clock: Callable[[], float]
    margin_ms: int
    webhook_scheduler: JobScheduler | None = None
    slowest_ms: int = field(default=0)
    chunks: int = field(default=0)

    def execute(self, context: RemainingTime) -> dict[str, Any]:
        if self.progress.total is None:
            self._count()
        # At least one step per run whatever the clock says, so the workflow's loop always advances.
        while not self.checkpoint.finished:
            if self.chunks and not self._time_left(context):
                return _outcome(self.job_id, LongRunningStatus.RUNNING, self.progress, done=False)
            self._chunk()
        if self.chunks and not self._time_left(context):
            return _outcome(self.job_id, LongRunningStatus.RUNNING, self.progress, done=False)
        return self._finish()

    def _time_left(self, context: RemainingTime) -> bool:
        return context.get_remaining_time_in_millis() > self.margin_ms + 2 * self.slowest_ms

    def _count(self) -> None:
        self.progress = self.progress.with_total(self.work.count(), now=utc_now())
        self.jobs.record_total(self.job_id, self.progress)

    def _chunk(self) -> None:
        started = self.clock()
        number = self.checkpoint.next_chunk
        done = self.work.chunk(number, self.checkpoint.last_key)
        checkpoint = Checkpoint(next_chunk=number + 1, last_key=done.next_key or None,
                                rows=self.checkpoint.rows + done.rows)  # fmt: skip
        processing_ms = self.processing_ms + _ms(self.clock() - started)
        progress = self.progress.after_chunk(
            current=checkpoint.rows, processing_ms=processing_ms, now=utc_now()
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
            "chunk done",
            extra={"job_id": self.job_id, "chunk": number, "rows": done.rows, **progress.as_dict()},
        )

    def _finish(self) -> dict[str, Any]:
        started = self.clock()
        result = self.work.finish(self.checkpoint.next_chunk, self.checkpoint.rows)
        job = self.jobs.succeed(
            self.job_id,
            expected_chunk=self.checkpoint.next_chunk,
            result=result,
            progress=self.progress.finished(current=self.checkpoint.rows, now=utc_now()),
            processing_ms=self.processing_ms + _ms(self.clock() - started),
        )
        queue_webhook(self.job_id, job, jobs=self.jobs, scheduler=self.webhook_scheduler)
        self.work.clean_up(self.checkpoint.next_chunk)
        logger.info("job finished", extra={"job_id": self.job_id, **result})
        return _outcome(self.job_id, job["status"], Progress.from_dict(job.get("progress")), done=True)


def run_job(
    job_id: str,
    context: RemainingTime,
    work: WorkFactory,
    *,
    jobs: LongRunningJobStore,
    clock: Callable[[], float] = time.monotonic,
    margin_ms: int = DEFAULT_MARGIN_MS,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Advance the job as far as this invocation's time allows; ``done`` False means call again."""
    item = jobs.begin_run(job_id)
    status = LongRunningStatus(item["status"])
    progress = Progress.from_dict(item.get("progress"))
    if status in TERMINAL_STATUSES:  # e.g. the workflow retried an invocation that had finished the job
        logger.info("job already ended", extra={"job_id": job_id, "status": status.value})
        # The invocation that finished it may have died before queueing the webhook: queue it (once).
        queue_webhook(job_id, item, jobs=jobs, scheduler=webhook_scheduler)
        return _outcome(job_id, status, progress, done=True)
    run = _Run(
        job_id=job_id,
        work=work(job_id, item.get("params") or {}),
        checkpoint=Checkpoint.from_item(item.get("checkpoint")),
        progress=progress,
        processing_ms=int(item.get("processing_ms") or 0),
        jobs=jobs,
        clock=clock,
        margin_ms=margin_ms,
        webhook_scheduler=webhook_scheduler,
    )
    return run.execute(context)


def fail_job(
    job_id: str,
    error: Mapping[str, Any],
    *,
    jobs: LongRunningJobStore,
    webhook_scheduler: JobScheduler | None = None,
) -> dict[str, Any]:
    """Record the failure Step Functions caught (``{"Error", "Cause"}``) and return the job.

    The job keeps only the public form of the failure; the error and its cause are logged."""
    job = jobs.fail(job_id, error)
    logger.warning(
        "job failed", extra={"job_id": job_id, "error": error.get("Error"), "cause": error.get("Cause")}
    )
    # Also when the job had already ended (a retried fail step, or a success before it): queued once.
    queue_webhook(job_id, job, jobs=jobs, scheduler=webhook_scheduler)
    return job


@transient_aws_errors
def handle_action(
    event: Mapping[str, Any],
    context: RemainingTime,
    *,
    run: Callable[[str, RemainingTime], dict[str, Any]],
    fail: Callable[[str, Mapping[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The worker's entry point: ``{"action": "run" | "fail", "job_id": ..., "error": {...}}``.

    AWS failures a retry can fix are raised as ``TransientError``, which the workflow retries."""
    action = event.get("action")
    if action == contract.LONG_RUNNING_RUN_ACTION:
        return run(check_job_id(event.get("job_id")), context)
    if action == contract.LONG_RUNNING_FAIL_ACTION:
        return fail(check_job_id(event.get("job_id")), event.get("error") or {})
    raise UnknownActionError(
        f"the worker has no action {action!r}; expected {contract.LONG_RUNNING_RUN_ACTION!r} "
        f"or {contract.LONG_RUNNING_FAIL_ACTION!r}"
    )
