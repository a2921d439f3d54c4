"""The signup journey: a welcome email now, a reminder after a day, a trial-expiry warning after three
days, both cancelled when the user converts. The delayed emails are jobs (``asyncstack.runtime.jobs``); the jobs
worker sends them once, however often a schedule fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime

from asyncstack.runtime.events import EventEnvelope, StrictModel
from asyncstack.runtime.jobs import cancel_job, run_once, schedule_job
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import load
from shared.config import OutboxSettings
from shared.events import Email, UserConverted, UserId, UserSignedUp
from shared.mailer import EmailMessage, EmailProvider, OutboxEmailProvider

SIGNUP_REMINDER = "job.signup_reminder"
TRIAL_EXPIRY_WARNING = "job.trial_expiry_warning"
DAILY_SUMMARY = "job.daily_summary"
# The job types the jobs worker runs; each is also the type of the job's message.
JOB_TYPES = (SIGNUP_REMINDER, TRIAL_EXPIRY_WARNING, DAILY_SUMMARY)
REMINDER_AFTER = timedelta(hours=24)
TRIAL_WARNING_AFTER = timedelta(days=3)


class UserJob(StrictModel):
    user_id: UserId
    email: Email
    name: str
    due_at: AwareDatetime


class SummaryJob(StrictModel):
    due_at: AwareDatetime


def _outbox() -> EmailProvider:
    return OutboxEmailProvider(load(OutboxSettings).outbox_table)


def _job_keys(user_id: str) -> dict[str, str]:
    return {SIGNUP_REMINDER: f"{user_id}.signup-reminder", TRIAL_EXPIRY_WARNING: f"{user_id}.trial-expiry"}


def on_signed_up(
    envelope: EventEnvelope, user: UserSignedUp, provider: EmailProvider | None = None
) -> dict[str, Any]:
    """Welcome now; schedule the reminder and the warning from the signup time (at once if already due)."""
    sent = (provider or _outbox()).send(
        EmailMessage(
            message_id=f"welcome#{user.user_id}",
            to=user.email,
            subject=f"Welcome, {user.name}",
            body="Your trial has started. It lasts 7 days.\n",
        )
    )
    payload = {"user_id": user.user_id, "email": user.email, "name": user.name}
    now = datetime.now(UTC)
    scheduled = {}
    for job_type, after in ((SIGNUP_REMINDER, REMINDER_AFTER), (TRIAL_EXPIRY_WARNING, TRIAL_WARNING_AFTER)):
        due = max(envelope.occurred_at + after, now)
        job = schedule_job(job_type, payload, key=_job_keys(user.user_id)[job_type], at=due)
        scheduled[job_type] = job.via
    logger.info("signup handled", extra={"user_id": user.user_id, "welcome_sent": sent, "jobs": scheduled})
    return {"welcome_sent": sent, "jobs": scheduled}


def on_converted(envelope: EventEnvelope, user: UserConverted) -> dict[str, Any]:
    """The user paid: the reminder and the trial warning must not go out. Cancelling what already ran or
    never existed is reported, not an error."""
    outcomes = {job_type: cancel_job(key).name for job_type, key in _job_keys(user.user_id).items()}
    logger.info("conversion handled", extra={"user_id": user.user_id, "cancelled": outcomes})
    return outcomes


def handle_user_event(envelope: EventEnvelope, data: Any) -> dict[str, Any]:
    if isinstance(data, UserSignedUp):
        return on_signed_up(envelope, data)
    return on_converted(envelope, data)


_TEXT = {
    SIGNUP_REMINDER: (
        "How is your trial going, {name}?",
        "You signed up yesterday. Here is how to get started.\n",
    ),
    TRIAL_EXPIRY_WARNING: (
        "Your trial ends soon, {name}",
        "Your trial ends in 4 days. Choose a plan to keep going.\n",
    ),
}


def run_job(envelope: EventEnvelope, job: Any, provider: EmailProvider | None = None) -> dict[str, Any]:
    """Run a due job once: a cancelled job that still arrives (a delayed SQS message cannot be recalled)
    or a job that already ran does nothing; a failed run is retried (``run_once`` releases it)."""
    with run_once(envelope.event_id, recurring=isinstance(job, SummaryJob)) as claimed:
        if not claimed:
            logger.info("job skipped: cancelled or already run", extra={"job_key": envelope.event_id})
            return {"ran": False}
        (provider or _outbox()).send(_job_email(envelope.type, job))
    return {"ran": True}


def _job_email(job_type: str, job: Any) -> EmailMessage:
    if isinstance(job, UserJob):
        subject, body = _TEXT[job_type]
        return EmailMessage(
            message_id=f"{job_type}#{job.user_id}",
            to=job.email,
            subject=subject.format(name=job.name),
            body=body,
        )
    return EmailMessage(
        message_id=f"{DAILY_SUMMARY}#{job.due_at:%Y-%m-%dT%H:%M}",
        to="operations@example.com",
        subject=f"Daily summary for {job.due_at:%Y-%m-%d}",
        body="The daily summary report.\n",
    )
