"""Starting a long-running job: create its item, then start its workflow execution named after it.

Both steps are idempotent (the item is created once, a Standard workflow refuses a second execution
of the same name), so an API that retries a start, or answers a replayed request, starts one job.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from asyncstack import contract
from asyncstack.runtime.long_running.store import LongRunningJobsSettings, LongRunningJobStore, check_job_id
from asyncstack.runtime.observability import logger
from asyncstack.runtime.workflows import start_once

__all__ = ["LongRunningStartSettings", "start_job"]


class LongRunningStartSettings(LongRunningJobsSettings):
    """What ``LongRunningJobs.grant_start`` tells a function that starts jobs."""

    state_machine_arn: str = Field(validation_alias=contract.LONG_RUNNING_STATE_MACHINE_ARN, min_length=1)


def start_job(
    job_id: str,
    request: BaseModel,
    *,
    state_machine_arn: str,
    jobs: LongRunningJobStore,
    sfn_client: Any = None,
) -> dict[str, Any]:
    """Create the job and start its execution (named ``job_id``, input ``{"job_id"}``); calling it again
    is harmless and returns the job as it is."""
    check_job_id(job_id)
    job = jobs.create(job_id, request)
    started = start_once(state_machine_arn, job_id, {"job_id": job_id}, client=sfn_client)
    if started.already_started:
        logger.info("the job's execution was started before", extra={"job_id": job_id})
    return job
