"""Webhooks of long-running jobs: when a job with a ``callback_url`` ends, its first signed delivery
is queued (``queue_webhook``), and the delivery worker reads the job through ``JobWebhooks``.

Queueing is idempotent by the delivery's job key, so a finish that is retried (the run's result was
lost, the fail step ran twice) queues once. The event is the job as callers see it, without its
webhook section, under the type the app names for each end (``SUCCEEDED`` / ``FAILED``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.jobs import JobScheduler, ScheduledJob
from asyncstack.runtime.long_running.store import TERMINAL_STATUSES, LongRunningJobStore, LongRunningStatus
from asyncstack.runtime.observability import logger
from asyncstack.runtime.timestamps import iso, utc_now
from asyncstack.runtime.webhooks.delivery import Webhook, WebhookEvent, queue_first_delivery
from asyncstack.runtime.webhooks.state import DeliveryAttempt, WebhookState, WebhookStatus

__all__ = ["JobWebhooks", "job_event", "queue_webhook"]


def job_event(job: Mapping[str, Any], event_types: Mapping[LongRunningStatus, str]) -> WebhookEvent | None:
    """The event of an ended job (as viewed): None while it runs, or if ``event_types`` names no type for its end.

    The same bytes on every attempt: its timestamp is the job's end, and ``webhook-id`` is the job's id
    and status (receivers drop the duplicates retries make)."""
    event_type = event_types.get(LongRunningStatus(job["status"]))
    if event_type is None:
        return None
    return WebhookEvent.of(
        event_type,
        {key: value for key, value in job.items() if key != "webhook"},
        timestamp=job.get("finished_at") or iso(utc_now()),
        message_id=f"msg_{job['job_id']}_{job['status']}",
    )


class JobWebhooks:
    """Long-running jobs as the webhook delivery engine's ``WebhookSubjects``."""

    def __init__(self, jobs: LongRunningJobStore, event_types: Mapping[LongRunningStatus, str]) -> None:
        self.jobs = jobs
        self.event_types = event_types

    def webhook(self, subject_id: str) -> Webhook | None:
        job = self.jobs.get(subject_id)
        if job is None or job.get("webhook") is None:
            return None
        return Webhook(state=WebhookState.from_dict(job["webhook"]), event=job_event(job, self.event_types))

    def record_attempt(
        self, subject_id: str, attempt: DeliveryAttempt, status: WebhookStatus, *, delivered_at: str | None
    ) -> bool:
        return self.jobs.record_webhook_attempt(subject_id, attempt, status, delivered_at=delivered_at)


def queue_webhook(
    job_id: str,
    job: Mapping[str, Any],
    *,
    jobs: LongRunningJobStore,
    scheduler: JobScheduler | None = None,
) -> ScheduledJob | None:
    """Queue the first webhook delivery of an ended job that has a callback; once per job, however
    often it is called. AWS failures raise ``TransientError``, which the job's workflow retries.

    ``job`` is the job as stored or viewed. The scheduler is the webhook deliveries' (the stack gives
    this worker their ``JOBS_*`` variables), built only here, so jobs without a callback need none."""
    webhook = job.get("webhook")
    if not webhook or job.get("status") not in TERMINAL_STATUSES:
        return None
    try:
        scheduled = queue_first_delivery(job_id, scheduler=scheduler)
        if webhook.get("status") == WebhookStatus.PENDING:
            jobs.mark_webhook_scheduled(job_id)
    except (ClientError, BotoCoreError) as exc:
        raise TransientError(f"could not queue the webhook of job {job_id}: {exc}") from exc
    logger.info(
        "webhook delivery queued" if scheduled.created else "webhook delivery was queued before",
        extra={"job_id": job_id, "job_key": scheduled.job_key},
    )
    return scheduled
