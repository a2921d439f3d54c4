"""Webhook delivery: POST a finished export job's signed event to its callback, with retries.

Each attempt is a delayed job (``asyncstack.runtime.jobs``) of type ``webhook.deliver`` keyed
``<job_id>.webhook.<attempt>``: the export worker queues attempt 1 when the job ends, and a failed
attempt n schedules attempt n+1 after ``next_delay(n)``. Retries of a minute or more go through
EventBridge Scheduler (``max_sqs_delay_seconds=60``), the 5 s one through an SQS delay. After the
last attempt, or at once if the callback has become unsafe (its name now resolves to a private
address), the webhook is ``callback_failed`` and the delivery goes to the webhook DLQ.

Every attempt is recorded on the job before anything follows from it, fenced on its number; a run
that finds its attempt already recorded (it crashed after recording) only redoes what follows,
which is idempotent (scheduling is keyed), so a crash never loses the next attempt.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, StringConstraints

from asyncstack import contract
from asyncstack.runtime import aws, ssrf
from asyncstack.runtime.events import EventEnvelope, StrictModel
from asyncstack.runtime.jobs import JobScheduler, run_once, schedule_job
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import table_name
from asyncstack.runtime.webhooks import SigningKeys, headers_for, load_signing_keys
from shared.exports import (
    JOB_ID_PATTERN,
    WEBHOOK_JOB_TYPE,
    ExportJobs,
    ExportStatus,
    WebhookStatus,
    webhook_job_key,
)

__all__ = [
    "DEAD_LETTER_VARIABLE",
    "EVENT_TYPES",
    "MAX_ATTEMPTS",
    "MAX_DELIVERY_DURATION",
    "RETRY_DELAYS",
    "WEBHOOK_MAX_SQS_DELAY_SECONDS",
    "DeliveryJob",
    "deliver",
    "delivery_scheduler",
    "event_body",
    "message_id",
    "next_delay",
]

# Attempt 1 when the job ends, attempt n+1 this long after attempt n failed: about 17.5 h in all.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# The longest one delivery record can take: the POST at its worst (DNS, three connects, the read) and
# the AWS calls around it. The consumer's batch and shutdown margin are sized from it.
MAX_DELIVERY_DURATION = timedelta(seconds=contract.WEBHOOK_DELIVERY_MAX_SECONDS)
JITTER = 0.10
WEBHOOK_MAX_SQS_DELAY_SECONDS = 60
DEAD_LETTER_VARIABLE = contract.WEBHOOK_DEAD_LETTER_QUEUE_URL
EVENT_TYPES = {ExportStatus.SUCCEEDED: "export.completed", ExportStatus.FAILED: "export.failed"}
_FINAL = frozenset({WebhookStatus.DELIVERED, WebhookStatus.CALLBACK_FAILED})
_ERROR_LIMIT = 512  # an attempt's error as stored on the job
_DLQ_MESSAGE_LIMIT = 1024


class DeliveryJob(StrictModel):
    """The payload of a ``webhook.deliver`` job."""

    job_id: Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN.pattern)]
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    due_at: AwareDatetime


def next_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta | None:
    """How long after failed ``attempt`` the next one runs; None after the last attempt.

    The delays are fixed, not the consumer's full jitter (a receiver should be able to tell when the
    next try comes); only ±10 % jitter is added, so the callbacks of many jobs that failed together
    (one receiver's outage) do not all come back in the same second."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if attempt > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempt - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))


def delivery_scheduler(environ: Mapping[str, str] | None = None) -> JobScheduler:
    """The webhook deliveries' scheduler: retries of a minute or more go through Scheduler."""
    scheduler = JobScheduler.from_environment(os.environ if environ is None else environ)
    return replace(scheduler, max_sqs_delay_seconds=WEBHOOK_MAX_SQS_DELAY_SECONDS)


def message_id(job: Mapping[str, Any]) -> str:
    """``webhook-id``: the same on every attempt, so receivers can drop the duplicates retries make."""
    return f"msg_{job['job_id']}_{job['status']}"


def event_body(job: Mapping[str, Any]) -> bytes:
    """The event, compact JSON: the same bytes on every attempt (its timestamp is the job's end)."""
    data = {key: value for key, value in job.items() if key != "webhook"}
    document = {
        "type": EVENT_TYPES[ExportStatus(job["status"])],
        "timestamp": job.get("finished_at") or _iso(datetime.now(UTC)),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _host(url: str) -> str:
    """For logs: the host only, as callback URLs may carry tokens in their path or query."""
    return urlsplit(url).hostname or "-"


def _recorded(webhook: Mapping[str, Any], attempt: int) -> dict[str, Any] | None:
    """Attempt ``attempt`` as recorded on the job, if it was."""
    return next((a for a in webhook.get("attempts") or [] if a.get("attempt") == attempt), None)


def _describe(record: Mapping[str, Any]) -> str:
    if record.get("status_code") is not None:
        return f"HTTP {record['status_code']}"
    return str(record.get("error") or "unknown error")


class _Delivery:
    """One run of a delivery job, with the clients and clock it was given."""

    def __init__(
        self,
        envelope: EventEnvelope,
        job: DeliveryJob,
        *,
        jobs: ExportJobs | None,
        scheduler: JobScheduler | None,
        sqs: Any,
        send: Callable[..., ssrf.Response],
        now: Callable[[], datetime],
        rng: random.Random | None,
    ) -> None:
        self.key = envelope.event_id
        self.envelope = envelope
        self.job_id = job.job_id
        self.attempt = job.attempt
        self.jobs = jobs if jobs is not None else ExportJobs()
        self.scheduler = scheduler
        self.sqs = sqs
        self.send = send
        self.now = now
        self.rng = rng

    def run(self) -> dict[str, Any]:
        keys = load_signing_keys()
        export = self.jobs.get(self.job_id)
        # A failed run releases its claim (the redelivery attempts again); a run that died keeps it until
        # its lease ends, and then the redelivery finds the attempt recorded or makes it.
        with run_once(self.key, scheduler=self.scheduler) as claimed:
            if not claimed:
                logger.info("webhook delivery skipped: cancelled or done", extra=self._log())
                return self._result("skipped")
            return self._result(self._attempt(export, keys))

    def _attempt(self, export: Mapping[str, Any] | None, keys: SigningKeys) -> str:
        """Make this attempt (or redo what follows a recorded one); returns the outcome."""
        webhook = (export or {}).get("webhook")
        if export is None or webhook is None or export["status"] not in EVENT_TYPES:
            logger.warning("webhook delivery skipped: no ended job with a callback", extra=self._log())
            return "skipped"
        if _recorded(webhook, self.attempt) is not None:
            self._resume(webhook)
            return "resumed"
        if webhook["status"] in _FINAL:
            return "skipped"

        now = self.now()
        body = event_body(export)
        headers = {
            "Content-Type": "application/json",
            **headers_for(keys.active(now), message_id(export), int(now.timestamp()), body),
        }
        status_code: int | None = None
        error: str | None = None
        unsafe = False
        try:
            response = self.send(
                webhook["callback_url"], body, headers, allow_insecure=ssrf.insecure_allowed()
            )
            status_code = response.status
        except ssrf.UnsafeCallbackUrl as exc:
            unsafe, error = True, f"unsafe callback URL: {exc}"
        except ssrf.DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # recorded like a network failure, so the retries still happen
            logger.exception("webhook delivery failed unexpectedly", extra=self._log())
            error = f"unexpected error: {type(exc).__name__}"

        delivered = status_code is not None and 200 <= status_code < 300
        if delivered:
            status = WebhookStatus.DELIVERED
        elif not unsafe and next_delay(self.attempt, rng=self.rng) is not None:
            status = WebhookStatus.SCHEDULED
        else:
            status = WebhookStatus.CALLBACK_FAILED
        record = {
            "attempt": self.attempt,
            "at": _iso(now),
            "status_code": status_code,
            "error": None if error is None else error[:_ERROR_LIMIT],
        }
        logger.info(
            "webhook attempt",
            extra={**self._log(), "host": _host(webhook["callback_url"]), "status_code": status_code,
                   "error": error, "webhook_status": status.value},
        )  # fmt: skip
        if self.jobs.record_webhook_attempt(
            self.job_id, record, status, delivered_at=_iso(self.now()) if delivered else None
        ):
            self._follow_up(status, [*webhook.get("attempts", []), record])
        return status.value

    def _resume(self, webhook: Mapping[str, Any]) -> None:
        """This attempt was recorded by a run that may have died before its follow-up: redo that, if
        this attempt is still the last one (scheduling is keyed, so a follow-up done is not redone)."""
        attempts = webhook.get("attempts") or []
        if attempts and attempts[-1].get("attempt") == self.attempt:
            self._follow_up(WebhookStatus(webhook["status"]), attempts)

    def _follow_up(self, status: WebhookStatus, attempts: list[Mapping[str, Any]]) -> None:
        if status == WebhookStatus.SCHEDULED:
            delay = next_delay(self.attempt, rng=self.rng)
            assert delay is not None  # SCHEDULED is only recorded when there is a next attempt
            scheduled = schedule_job(
                WEBHOOK_JOB_TYPE,
                {"job_id": self.job_id, "attempt": self.attempt + 1},
                key=webhook_job_key(self.job_id, self.attempt + 1),
                delay=delay,
                scheduler=self._retry_scheduler(),
            )
            logger.info(
                "webhook retry scheduled",
                extra={**self._log(), "next_attempt": self.attempt + 1, "due_at": _iso(scheduled.due_at),
                       "via": scheduled.via},
            )  # fmt: skip
        elif status == WebhookStatus.CALLBACK_FAILED:
            self._dead_letter(attempts)

    def _retry_scheduler(self) -> JobScheduler:
        if self.scheduler is None:
            return delivery_scheduler()
        return replace(self.scheduler, max_sqs_delay_seconds=WEBHOOK_MAX_SQS_DELAY_SECONDS)

    def _dead_letter(self, attempts: list[Mapping[str, Any]]) -> None:
        last = attempts[-1] if attempts else {}
        message = f"webhook failed after {len(attempts)} attempt(s); last: {_describe(last)}"[
            :_DLQ_MESSAGE_LIMIT
        ]
        attributes = {
            "error-type": "CallbackFailed",
            "error-message": message,
            "failed-at": _iso(self.now()),
            "job-id": self.job_id,
            "job-key": self.key,
        }
        (self.sqs or aws.client("sqs")).send_message(
            QueueUrl=table_name(DEAD_LETTER_VARIABLE),
            MessageBody=self.envelope.model_dump_json(),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        )
        logger.warning("webhook callback failed", extra={**self._log(), "reason": message})

    def _result(self, outcome: str) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt, "outcome": outcome}

    def _log(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt, "job_key": self.key}


def deliver(
    envelope: EventEnvelope,
    job: DeliveryJob,
    *,
    jobs: ExportJobs | None = None,
    scheduler: JobScheduler | None = None,
    sqs: Any = None,
    send: Callable[..., ssrf.Response] = ssrf.post,
    now: Callable[[], datetime] = _utc_now,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Run delivery attempt ``job.attempt`` of ``job.job_id``'s webhook, once per job key.

    ``scheduler`` (default: the environment's) records the claim and schedules the next attempt."""
    return _Delivery(
        envelope, job, jobs=jobs, scheduler=scheduler, sqs=sqs, send=send, now=now, rng=rng
    ).run()
