"""Long-running jobs: work done in chunks by a worker a Step Functions workflow keeps invoking, with
progress, a checkpoint per chunk, resumption after a crash, a result, and a signed webhook at the end.

The job ``store`` (one item per job: fenced progress and checkpoint updates, the result, the public
failure, the webhook section), the ``runner`` (chunks until the deadline margin, ``done`` for the
workflow's loop), the ``checkpoint``, ``progress`` (pure arithmetic), the ``view`` callers see
(``view_of_item``), and ``start_job``. An app supplies its ``ChunkedWork``;
``asyncstack.cdk.long_running_jobs.LongRunningJobs`` builds the table, the results bucket and the workflow.
"""

from asyncstack.runtime.long_running.checkpoint import Checkpoint
from asyncstack.runtime.long_running.errors import (
    CheckpointConflictError,
    InvalidJobIdError,
    UnknownActionError,
    UnknownJobError,
)
from asyncstack.runtime.long_running.progress import Progress
from asyncstack.runtime.long_running.runner import (
    DEFAULT_MARGIN_MS,
    Chunk,
    ChunkedWork,
    LongRunningWorkerSettings,
    RemainingTime,
    WorkFactory,
    fail_job,
    handle_action,
    run_job,
)
from asyncstack.runtime.long_running.start import LongRunningStartSettings, start_job
from asyncstack.runtime.long_running.store import (
    JOB_ID_PATTERN,
    TERMINAL_STATUSES,
    LongRunningJobsSettings,
    LongRunningJobStore,
    LongRunningStatus,
    check_job_id,
    new_job_id,
)
from asyncstack.runtime.long_running.view import (
    DEFAULT_FAILURE_MESSAGES,
    job_view,
    public_failure,
    view_of_item,
)
from asyncstack.runtime.long_running.webhooks import JobWebhooks, job_event, queue_webhook

__all__ = [
    "DEFAULT_FAILURE_MESSAGES",
    "DEFAULT_MARGIN_MS",
    "JOB_ID_PATTERN",
    "TERMINAL_STATUSES",
    "Checkpoint",
    "CheckpointConflictError",
    "Chunk",
    "ChunkedWork",
    "InvalidJobIdError",
    "JobWebhooks",
    "LongRunningJobStore",
    "LongRunningJobsSettings",
    "LongRunningStartSettings",
    "LongRunningStatus",
    "LongRunningWorkerSettings",
    "Progress",
    "RemainingTime",
    "UnknownActionError",
    "UnknownJobError",
    "WorkFactory",
    "check_job_id",
    "fail_job",
    "handle_action",
    "job_event",
    "job_view",
    "new_job_id",
    "public_failure",
    "queue_webhook",
    "run_job",
    "start_job",
    "view_of_item",
]
