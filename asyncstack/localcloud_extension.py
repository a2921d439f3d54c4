"""asyncstack's extension of the local cloud (``localcloud.extensions``), registered as the entry point
``localcloud.extensions: asyncstack``.

What localcloud cannot know of a stack built with asyncstack's constructs: that the app must be told
it runs locally, the webhook signing secret it generated at deploy, which REST API is the job API,
which queues are dead-letter queues (their tag), and two dashboard views, long-running jobs and
pending delayed jobs (with a cancel action). The stack's tables are found from its outputs, else
from the environment the constructs give the functions (``asyncstack.contract``). Only the local
cloud imports this module, never a deployed function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asyncstack import contract
from localcloud.extensions import Cloud, DashboardPanel, Extension, NotFound, Queue, Refused

# The app reads it (app.py): plain-HTTP webhook callbacks allowed, functions built for this machine.
PANELS = Path(__file__).resolve().parent / "localcloud_panels"
RECENT_JOBS = 50
# Stack output -> the variable the constructs set on the functions that use the same resource.
JOB_API = "JobApiId"
DELAYED_JOBS_TABLE = ("JobsTableName", contract.JOBS_TABLE_NAME)
SCHEDULE_GROUP = ("JobsScheduleGroupName", contract.JOBS_SCHEDULE_GROUP)
LONG_RUNNING_JOBS_TABLE = ("ExportJobsTableName", contract.LONG_RUNNING_JOBS_TABLE_NAME)
WEBHOOK_SECRET = ("WebhookSecretArn", contract.WEBHOOK_SECRET_ARN)


class AsyncStackExtension(Extension):
    name = "asyncstack"

    def cdk_context(self) -> Mapping[str, str]:
        return {contract.LOCAL_CLOUD_CONTEXT: "true"}

    def status(self, cloud: Cloud) -> Mapping[str, Any]:
        secret = webhook_secret(cloud)
        return {} if secret is None else {"webhook_secret": secret}

    def root_api(self, cloud: Cloud) -> str | None:
        return cloud.stack_outputs().get(JOB_API)

    def is_dead_letter_queue(self, queue: Queue) -> bool:
        return contract.DEAD_LETTER_QUEUE_TAG in queue.tags

    def dashboard_panels(self, cloud: Cloud) -> Sequence[DashboardPanel]:
        return [
            DashboardPanel(
                name="jobs", title="Jobs", script=(PANELS / "jobs.js").read_text(),
                read=lambda: long_running_jobs(cloud),
            ),
            DashboardPanel(
                name="schedules", title="Schedules", script=(PANELS / "schedules.js").read_text(),
                read=lambda: delayed_jobs(cloud),
                actions={"cancel": lambda job_key, _request: cancel_delayed_job(cloud, job_key)},
            ),
        ]  # fmt: skip


def find(cloud: Cloud, where: tuple[str, str]) -> str | None:
    """A resource of the stack: its stack output, else the variable a deployed function is given."""
    output, variable = where
    found = cloud.stack_outputs().get(output)
    if found:
        return found
    for page in cloud.client("lambda").get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            value = ((function.get("Environment") or {}).get("Variables") or {}).get(variable)
            if value:
                return str(value)
    return None


def webhook_secret(cloud: Cloud) -> str | None:
    """The current webhook signing secret (``whsec_...``), generated at deploy; verify deliveries with it."""
    from asyncstack.runtime.webhooks import load_signing_keys

    arn = find(cloud, WEBHOOK_SECRET)
    if arn is None:
        return None
    return load_signing_keys(arn, client=cloud.client("secretsmanager"), refresh=True).current


def _items(cloud: Cloud, table: str | None) -> list[dict[str, Any]]:
    """A table's items in attribute-value form (``[]`` before the stack is deployed)."""
    if table is None:
        return []
    pages = cloud.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def long_running_jobs(cloud: Cloud) -> list[dict[str, Any]]:
    """Long-running jobs, newest first, each as the job API reports it (progress, webhook attempts)."""
    from asyncstack.runtime.long_running import view_of_item

    jobs = [view_of_item(item) for item in _items(cloud, find(cloud, LONG_RUNNING_JOBS_TABLE))]
    jobs.sort(key=lambda job: job.get("created_at") or "", reverse=True)
    return jobs[:RECENT_JOBS]


def delayed_jobs(cloud: Cloud) -> dict[str, Any]:
    """Delayed jobs: the pending ones by due time, and how many there are in each status."""
    items = [
        {name: value.get("S", value.get("N")) for name, value in item.items()}
        for item in _items(cloud, find(cloud, DELAYED_JOBS_TABLE))
    ]
    pending = [
        {
            key: item.get(key)
            for key in ("job_key", "job_type", "due_at", "via", "schedule_name", "scheduled_at")
        }
        for item in items
        if item.get("status") == "pending"
    ]
    return {
        "pending": sorted(pending, key=lambda job: job["due_at"] or ""),
        "by_status": dict(Counter(item.get("status") for item in items)),
    }


def cancel_delayed_job(cloud: Cloud, job_key: str) -> dict[str, Any]:
    from asyncstack.runtime.jobs import CancelOutcome, JobScheduler

    table, group = find(cloud, DELAYED_JOBS_TABLE), find(cloud, SCHEDULE_GROUP)
    if table is None or group is None:
        raise NotFound("no stack with delayed jobs is deployed")
    jobs = JobScheduler(
        queue_url="", queue_arn="", role_arn="", dead_letter_arn="", job_types=frozenset(),
        jobs_table=table, schedule_group=group, now=cloud.clock.now,
        dynamodb_client=cloud.client("dynamodb"), scheduler_client=cloud.client("scheduler"),
    )  # fmt: skip
    if jobs.status(job_key) is None:  # cancel() would record a cancellation in advance
        raise NotFound(f"no delayed job {job_key}")
    outcome = jobs.cancel(job_key)
    if outcome is not CancelOutcome.CANCELLED:
        raise Refused(f"job {job_key} cannot be cancelled: {outcome.value.replace('_', ' ')}")
    return {"job_key": job_key, "outcome": outcome.value}
