"""Webhook delivery: POST a signed event to a callback, with retries over hours.

Each attempt is a delayed job (``asyncstack.runtime.jobs``) of type ``webhook.deliver`` keyed
``<id>.webhook.<attempt>``, where ``<id>`` names what the webhook is about (a long-running job): the
first is queued when that ends (``queue_first_delivery``), and a failed attempt n schedules attempt
n+1 after ``next_delay(n)``. Retries of a minute or more go through EventBridge Scheduler
(``max_sqs_delay_seconds=60``), the 5 s one through an SQS delay. After the last attempt, or at once
if the callback has become unsafe (its name now resolves to a private address), the webhook is
``callback_failed`` and the delivery goes to the webhook DLQ.

The engine knows nothing of what the webhook is about: a ``WebhookSubjects`` gives it the event to
send and the webhook's state, and records each attempt. Every attempt is recorded before anything
follows from it, fenced on its number; a run that finds its attempt already recorded (it crashed
after recording) only redoes what follows, which is idempotent (scheduling is keyed), so a crash
never loses the next attempt.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, StringConstraints

from asyncstack import contract
from asyncstack.runtime import aws, ssrf
from asyncstack.runtime.events import EventEnvelope, StrictModel
from asyncstack.runtime.jobs import JobScheduler, JobSchedulerSettings, ScheduledJob, run_once, schedule_job
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import EnvironmentSettings, load
from asyncstack.runtime.timestamps import iso, utc_now
from asyncstack.runtime.webhooks.secret import SigningKeys, load_signing_keys
from asyncstack.runtime.webhooks.signing import headers_for
from asyncstack.runtime.webhooks.state import FINAL_STATUSES, DeliveryAttempt, WebhookState, WebhookStatus

__all__ = [
    "DELIVERY_JOB_TYPE",
    "FIRST_DELIVERY_DELAY",
    "JITTER",
    "MAX_ATTEMPTS",
    "MAX_DELIVERY_DURATION",
    "RETRY_DELAYS",
    "WEBHOOK_MAX_SQS_DELAY_SECONDS",
    "DeliveryJob",
    "DeliverySettings",
    "Webhook",
    "WebhookEvent",
    "WebhookSubjects",
    "deliver",
    "delivery_job_key",
    "delivery_scheduler",
    "next_delay",
    "queue_first_delivery",
]

DELIVERY_JOB_TYPE = contract.WEBHOOK_DELIVERY_JOB_TYPE
# Attempt 1 when the subject ends, attempt n+1 this long after attempt n failed: about 17.5 h in all.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.10
FIRST_DELIVERY_DELAY = timedelta(seconds=1)
# The longest one delivery record can take: the POST at its worst (DNS, three connects, the read) and
# the AWS calls around it. The delivery queue's batch and shutdown margin are sized from it.
MAX_DELIVERY_DURATION = timedelta(seconds=contract.WEBHOOK_DELIVERY_MAX_SECONDS)
WEBHOOK_MAX_SQS_DELAY_SECONDS = 60
# What a subject id may be: the delivery's job key ("<id>.webhook.<n>") must stay a valid job key.
_SUBJECT_ID = r"^[A-Za-z0-9._:-]{1,100}$"
_ERROR_LIMIT = 512  # an attempt's error as recorded
_DLQ_MESSAGE_LIMIT = 1024


class DeliverySettings(EnvironmentSettings):
    """What ``asyncstack.cdk.WebhookDelivery`` tells its worker besides the secret: where failures go."""

    dead_letter_queue_url: str = Field(validation_alias=contract.WEBHOOK_DEAD_LETTER_QUEUE_URL, min_length=1)


class DeliveryJob(StrictModel):
    """The payload of a ``webhook.deliver`` job; ``job_id`` names what the webhook is about."""

    job_id: Annotated[str, StringConstraints(pattern=_SUBJECT_ID)]
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    due_at: AwareDatetime


@dataclass(frozen=True)
class WebhookEvent:
    """What is sent: ``body`` the same bytes on every attempt, ``message_id`` the ``webhook-id``
    (the same on every attempt, so receivers can drop the duplicates retries make)."""

    type: str
    body: bytes
    message_id: str

    @classmethod
    def of(cls, event_type: str, data: Mapping[str, Any], *, timestamp: str, message_id: str) -> WebhookEvent:
        """The Standard Webhooks payload ``{"type", "timestamp", "data"}`` as compact JSON."""
        document = {"type": event_type, "timestamp": timestamp, "data": dict(data)}
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
        return cls(type=event_type, body=body, message_id=message_id)


@dataclass(frozen=True)
class Webhook:
    """A subject's webhook: its state, and the event to send (None while there is nothing to send)."""

    state: WebhookState
    event: WebhookEvent | None


class WebhookSubjects(Protocol):
    """The things webhooks are about (long-running jobs, orders...), as the delivery engine sees them."""

    def webhook(self, subject_id: str) -> Webhook | None:
        """The subject's webhook, read once per attempt; None if there is no such subject or no callback."""
        ...

    def record_attempt(
        self, subject_id: str, attempt: DeliveryAttempt, status: WebhookStatus, *, delivered_at: str | None
    ) -> bool:
        """Append ``attempt`` and set ``status``, only while fewer attempts are recorded (the fence);
        False if this attempt was recorded before."""
        ...


def next_delay(attempt: int, *, rng: random.Random | None = None) -> timedelta | None:
    """How long after failed ``attempt`` the next one runs; None after the last attempt.

    The delays are fixed, not the consumer's full jitter (a receiver should be able to tell when the
    next try comes); only ±10 % jitter is added, so the callbacks of many subjects that failed together
    (one receiver's outage) do not all come back in the same second."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if attempt > len(RETRY_DELAYS):
        return None
    return RETRY_DELAYS[attempt - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))


def delivery_job_key(subject_id: str, attempt: int) -> str:
    """The delayed-job key of a delivery attempt: one job per attempt, so each is queued once."""
    return f"{subject_id}.webhook.{attempt}"


def delivery_scheduler(environ: Mapping[str, str] | None = None) -> JobScheduler:
    """The webhook deliveries' scheduler: retries of a minute or more go through Scheduler."""
    if environ is None:
        return JobScheduler.from_settings(
            load(JobSchedulerSettings), max_sqs_delay_seconds=WEBHOOK_MAX_SQS_DELAY_SECONDS
        )
    return replace(
        JobScheduler.from_environment(environ), max_sqs_delay_seconds=WEBHOOK_MAX_SQS_DELAY_SECONDS
    )


def queue_first_delivery(subject_id: str, *, scheduler: JobScheduler | None = None) -> ScheduledJob:
    """Queue attempt 1 of a subject's webhook, once however often it is called (the job key is fixed).

    ``scheduler``: the delivery jobs' (the construct gives the queueing function their ``JOBS_*``
    variables), built from the environment only when nothing is passed."""
    return schedule_job(
        DELIVERY_JOB_TYPE,
        {"job_id": subject_id, "attempt": 1},
        key=delivery_job_key(subject_id, 1),
        delay=FIRST_DELIVERY_DELAY,
        scheduler=scheduler if scheduler is not None else delivery_scheduler(),
    )


def _host(url: str | None) -> str:
    """For logs: the host only, as callback URLs may carry tokens in their path or query."""
    return urlsplit(url or "").hostname or "-"


def _describe(attempt: DeliveryAttempt | None) -> str:
    if attempt is not None and attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return str((attempt.error if attempt is not None else None) or "unknown error")


@dataclass
class _Delivery:
    """One run of a delivery job, with the clients and clock it was given."""

    envelope: EventEnvelope
    job: DeliveryJob
    subjects: WebhookSubjects
    scheduler: JobScheduler | None
    sqs: Any
    send: Callable[..., ssrf.Response]
    now: Callable[[], datetime]
    rng: random.Random | None

    @property
    def key(self) -> str:
        return self.envelope.event_id

    def run(self) -> dict[str, Any]:
        keys = load_signing_keys()
        webhook = self.subjects.webhook(self.job.job_id)
        # A failed run releases its claim (the redelivery attempts again); a run that died keeps it until
        # its lease ends, and then the redelivery finds the attempt recorded or makes it.
        with run_once(self.key, scheduler=self.scheduler) as claimed:
            if not claimed:
                logger.info("webhook delivery skipped: cancelled or done", extra=self._log())
                return self._result("skipped")
            return self._result(self._attempt(webhook, keys))

    def _attempt(self, webhook: Webhook | None, keys: SigningKeys) -> str:
        """Make this attempt (or redo what follows a recorded one); returns the outcome."""
        if webhook is None or webhook.event is None:
            logger.warning("webhook delivery skipped: nothing ended with a callback", extra=self._log())
            return "skipped"
        state, event = webhook.state, webhook.event
        if state.recorded(self.job.attempt) is not None:
            self._resume(state)
            return "resumed"
        if state.status in FINAL_STATUSES:
            return "skipped"

        now = self.now()
        headers = {
            "Content-Type": "application/json",
            **headers_for(keys.active(now), event.message_id, int(now.timestamp()), event.body),
        }
        status_code: int | None = None
        error: str | None = None
        unsafe = False
        try:
            response = self.send(
                state.callback_url, event.body, headers, allow_insecure=ssrf.insecure_allowed()
            )
            status_code = response.status
        except ssrf.UnsafeCallbackUrlError as exc:
            unsafe, error = True, f"unsafe callback URL: {exc}"
        except ssrf.DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # recorded like a network failure, so the retries still happen
            logger.exception("webhook delivery failed unexpectedly", extra=self._log())
            error = f"unexpected error: {type(exc).__name__}"

        delivered = status_code is not None and 200 <= status_code < 300
        if delivered:
            status = WebhookStatus.DELIVERED
        elif not unsafe and next_delay(self.job.attempt, rng=self.rng) is not None:
            status = WebhookStatus.SCHEDULED
        else:
            status = WebhookStatus.CALLBACK_FAILED
        record = DeliveryAttempt(
            attempt=self.job.attempt,
            at=iso(now),
            status_code=status_code,
            error=None if error is None else error[:_ERROR_LIMIT],
        )
        logger.info(
            "webhook attempt",
            extra={**self._log(), "host": _host(state.callback_url), "status_code": status_code,
                   "error": error, "webhook_status": status.value},
        )  # fmt: skip
        delivered_at = iso(self.now()) if delivered else None
        if self.subjects.record_attempt(self.job.job_id, record, status, delivered_at=delivered_at):
            self._follow_up(status, (*state.attempts, record))
        return status.value

    def _resume(self, state: WebhookState) -> None:
        """This attempt was recorded by a run that may have died before its follow-up: redo that, if
        this attempt is still the last one (scheduling is keyed, so a follow-up done is not redone)."""
        if state.attempts and state.attempts[-1].attempt == self.job.attempt:
            self._follow_up(state.status, state.attempts)

    def _follow_up(self, status: WebhookStatus, attempts: tuple[DeliveryAttempt, ...]) -> None:
        if status == WebhookStatus.SCHEDULED:
            delay = next_delay(self.job.attempt, rng=self.rng)
            assert delay is not None  # SCHEDULED is only recorded when there is a next attempt
            following = self.job.attempt + 1
            scheduled = schedule_job(
                DELIVERY_JOB_TYPE,
                {"job_id": self.job.job_id, "attempt": following},
                key=delivery_job_key(self.job.job_id, following),
                delay=delay,
                scheduler=self._retry_scheduler(),
            )
            logger.info(
                "webhook retry scheduled",
                extra={**self._log(), "next_attempt": following, "due_at": iso(scheduled.due_at),
                       "via": scheduled.via},
            )  # fmt: skip
        elif status == WebhookStatus.CALLBACK_FAILED:
            self._dead_letter(attempts)

    def _retry_scheduler(self) -> JobScheduler:
        if self.scheduler is None:
            return delivery_scheduler()
        return replace(self.scheduler, max_sqs_delay_seconds=WEBHOOK_MAX_SQS_DELAY_SECONDS)

    def _dead_letter(self, attempts: tuple[DeliveryAttempt, ...]) -> None:
        last = attempts[-1] if attempts else None
        message = f"webhook failed after {len(attempts)} attempt(s); last: {_describe(last)}"[
            :_DLQ_MESSAGE_LIMIT
        ]
        attributes = {
            "error-type": "CallbackFailed",
            "error-message": message,
            "failed-at": iso(self.now()),
            "job-id": self.job.job_id,
            "job-key": self.key,
        }
        (self.sqs or aws.client("sqs")).send_message(
            QueueUrl=load(DeliverySettings).dead_letter_queue_url,
            MessageBody=self.envelope.model_dump_json(),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            },
        )
        logger.warning("webhook callback failed", extra={**self._log(), "reason": message})

    def _result(self, outcome: str) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "attempt": self.job.attempt, "outcome": outcome}

    def _log(self) -> dict[str, Any]:
        return {"job_id": self.job.job_id, "attempt": self.job.attempt, "job_key": self.key}


def deliver(
    envelope: EventEnvelope,
    job: DeliveryJob,
    *,
    subjects: WebhookSubjects,
    scheduler: JobScheduler | None = None,
    sqs: Any = None,
    send: Callable[..., ssrf.Response] = ssrf.post,
    now: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Run delivery attempt ``job.attempt`` of the webhook of ``job.job_id``, once per job key.

    ``scheduler`` (default: the environment's) records the claim and schedules the next attempt."""
    return _Delivery(envelope, job, subjects, scheduler, sqs, send, now, rng).run()
