"""Delayed jobs: schedule work for later (an SQS delay, or an EventBridge Scheduler ``at()``), cancel it,
and run each job once.

Three pieces: ``scheduling`` (``schedule_job``, ``cancel_job``, ``JobScheduler``), the job ``store``
(one DynamoDB item per job key: claims with leases, ``run_once``) and the ``message`` the worker
receives (``JobMessage``). ``asyncstack.cdk.delayed_jobs.DelayedJobs`` builds what they need.
"""

from asyncstack.runtime.jobs.errors import (
    InvalidJobKeyError,
    InvalidPayloadError,
    JobBusyError,
    JobConfigError,
    JobError,
    JobTimingError,
    NaiveDatetimeError,
    PastDueError,
    PayloadNotSerializableError,
    PayloadTooLargeError,
    UnknownJobTypeError,
)
from asyncstack.runtime.jobs.message import JOB_SOURCE, MAX_JOB_KEY_LENGTH, JobMessage, check_job_key
from asyncstack.runtime.jobs.scheduling import (
    MAX_SQS_DELAY_SECONDS,
    PAST_DUE_TOLERANCE,
    SCHEDULER_MAX_INPUT_CHARS,
    SQS_MAX_MESSAGE_BYTES,
    JobScheduler,
    JobSchedulerSettings,
    ScheduledJob,
    Via,
    cancel_job,
    default_scheduler,
    schedule_job,
    schedule_name_for,
)
from asyncstack.runtime.jobs.store import (
    DEFAULT_CLAIM_LEASE,
    ITEM_RETENTION,
    CancelOutcome,
    JobClaim,
    JobClaims,
    JobStatus,
    JobStore,
    JobStoreSettings,
    default_store,
    run_once,
)

__all__ = [
    "DEFAULT_CLAIM_LEASE",
    "ITEM_RETENTION",
    "JOB_SOURCE",
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
    "JobClaims",
    "JobConfigError",
    "JobError",
    "JobMessage",
    "JobScheduler",
    "JobSchedulerSettings",
    "JobStatus",
    "JobStore",
    "JobStoreSettings",
    "JobTimingError",
    "NaiveDatetimeError",
    "PastDueError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "ScheduledJob",
    "UnknownJobTypeError",
    "Via",
    "cancel_job",
    "check_job_key",
    "default_scheduler",
    "default_store",
    "run_once",
    "schedule_job",
    "schedule_name_for",
]
