"""The export jobs' webhooks: which event an ended export sends, on the framework's delivery engine.

``asyncstack.runtime.webhooks.delivery`` delivers (signed, retried over hours, SSRF-checked, the DLQ
after the last attempt); ``asyncstack.runtime.long_running.JobWebhooks`` reads and records the
webhook on the job. What is the example's own: an export that SUCCEEDED sends ``export.completed``,
one that FAILED sends ``export.failed``, with the job as ``GET /exports/{job_id}`` shows it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from asyncstack.runtime import ssrf
from asyncstack.runtime.events import EventEnvelope
from asyncstack.runtime.jobs import JobScheduler
from asyncstack.runtime.long_running import JobWebhooks, job_event
from asyncstack.runtime.timestamps import utc_now
from asyncstack.runtime.webhooks import MAX_ATTEMPTS, DeliveryJob, delivery
from shared.exports import ExportJobs, ExportStatus

__all__ = ["EVENT_TYPES", "MAX_ATTEMPTS", "deliver", "event_body", "export_webhooks"]

EVENT_TYPES = {ExportStatus.SUCCEEDED: "export.completed", ExportStatus.FAILED: "export.failed"}


def export_webhooks(jobs: ExportJobs | None = None) -> JobWebhooks:
    """Export jobs as the delivery engine sees them."""
    return JobWebhooks(jobs if jobs is not None else ExportJobs(), EVENT_TYPES)


def event_body(job: Mapping[str, Any]) -> bytes:
    """The body an ended export's webhook carries (the same bytes on every attempt)."""
    event = job_event(job, EVENT_TYPES)
    if event is None:
        raise ValueError(f"export job {job.get('job_id')!r} has not ended: it has no event yet")
    return event.body


def deliver(
    envelope: EventEnvelope,
    job: DeliveryJob,
    *,
    jobs: ExportJobs | None = None,
    scheduler: JobScheduler | None = None,
    sqs: Any = None,
    send: Callable[..., ssrf.Response] = ssrf.post,
    now: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Run delivery attempt ``job.attempt`` of export ``job.job_id``'s webhook, once per job key."""
    return delivery.deliver(
        envelope,
        job,
        subjects=export_webhooks(jobs),
        scheduler=scheduler,
        sqs=sqs,
        send=send,
        now=now,
        rng=rng,
    )
