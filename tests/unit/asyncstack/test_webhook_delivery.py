"""The webhook delivery engine (asyncstack/runtime/webhooks/delivery.py) on moto, for a subject that is not a job:
an in-memory ``WebhookSubjects`` and a recording ``send`` stand for what the webhook is about and the receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine
from standardwebhooks.webhooks import Webhook as Verifier

from asyncstack import contract
from asyncstack.runtime import ssrf
from asyncstack.runtime.events import EventEnvelope
from asyncstack.runtime.jobs import JobScheduler
from asyncstack.runtime.webhooks import (
    DELIVERY_JOB_TYPE,
    MAX_ATTEMPTS,
    MAX_DELIVERY_DURATION,
    RETRY_DELAYS,
    DeliveryAttempt,
    DeliveryJob,
    Webhook,
    WebhookEvent,
    WebhookState,
    WebhookStatus,
    clear_secret_cache,
    deliver,
    delivery_job_key,
    new_secret,
)
from tests.unit.conftest import REGION, make_table, make_work_queue

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
CALLBACK = "https://hooks.example.com/orders?token=t0k"
# What the AWS calls around one POST may take at most (read the subject, claim, record, follow up): a few
# DynamoDB and SQS calls of milliseconds each, with room for the SDK's retries.
AWS_CALLS_MARGIN_SECONDS = 5


@dataclass
class Subjects:
    """Orders whose shipment sends a webhook: the webhook state per order, and the event once there is one."""

    states: dict[str, WebhookState] = field(default_factory=dict)
    events: dict[str, WebhookEvent] = field(default_factory=dict)

    def webhook(self, subject_id: str) -> Webhook | None:
        state = self.states.get(subject_id)
        return None if state is None else Webhook(state=state, event=self.events.get(subject_id))

    def record_attempt(
        self, subject_id: str, attempt: DeliveryAttempt, status: WebhookStatus, *, delivered_at: str | None
    ) -> bool:
        state = self.states[subject_id]
        if len(state.attempts) >= attempt.attempt:  # the fence: this attempt was recorded before
            return False
        self.states[subject_id] = replace(
            state, attempts=(*state.attempts, attempt), status=status, delivered_at=delivered_at
        )
        return True

    def shipped(self, order_id: str) -> None:
        self.states[order_id] = replace(WebhookState.pending(CALLBACK), status=WebhookStatus.SCHEDULED)
        self.events[order_id] = WebhookEvent.of(
            "order.shipped",
            {"order_id": order_id},
            timestamp="2030-01-01T11:00:00Z",
            message_id=f"msg_{order_id}",
        )


@dataclass
class Receiver:
    """A ``send`` that answers ``statuses`` in turn (then 204), or raises ``error``; it records each request."""

    statuses: list[int] = field(default_factory=list)
    error: Exception | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], *, allow_insecure: bool
    ) -> ssrf.Response:
        self.requests.append({"url": url, "body": body, "headers": headers, "allow_insecure": allow_insecure})
        if self.error is not None:
            raise self.error
        return ssrf.Response(self.statuses.pop(0) if self.statuses else 204, b"")


@dataclass
class Setup:
    scheduler: JobScheduler
    dead_letter_url: str
    secret: str


@pytest.fixture
def setup(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    queue = make_work_queue("deliveries")
    boto3.client("scheduler", region_name=REGION).create_schedule_group(Name="deliveries")
    secret = new_secret()
    secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="signing", SecretString=json.dumps({"current": secret})
    )["ARN"]
    dead_letter_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="webhook-dlq")[
        "QueueUrl"
    ]
    monkeypatch.setenv(contract.WEBHOOK_SECRET_ARN, secret_arn)
    monkeypatch.setenv(contract.WEBHOOK_DEAD_LETTER_QUEUE_URL, dead_letter_url)
    scheduler = JobScheduler(
        queue_url=queue.url, queue_arn=queue.arn, schedule_group="deliveries", role_arn="arn:aws:iam::1:role/s",
        dead_letter_arn=queue.arn, jobs_table=make_table("delivery-jobs", "job_key", ttl="expires_at"),
        job_types=frozenset({DELIVERY_JOB_TYPE}), max_sqs_delay_seconds=60,
    )  # fmt: skip
    clear_secret_cache()
    with time_machine.travel(T0, tick=False):
        yield Setup(scheduler=scheduler, dead_letter_url=dead_letter_url, secret=secret)
    clear_secret_cache()


def attempt(
    subjects: Subjects, setup: Setup, receiver: Receiver, order_id: str, number: int
) -> dict[str, Any]:
    """Delivery attempt ``number`` as the delivery worker runs it, once its delayed job came due."""
    key = delivery_job_key(order_id, number)
    setup.scheduler.store.create_pending(
        key, DELIVERY_JOB_TYPE, due=T0, now=T0, via="sqs", schedule_name=None
    )
    envelope = EventEnvelope(
        event_id=key, type=DELIVERY_JOB_TYPE, source=contract.JOB_MESSAGE_SOURCE,
        occurred_at=T0, data={"job_id": order_id, "attempt": number, "due_at": T0.isoformat()},
    )  # fmt: skip
    job = DeliveryJob(job_id=order_id, attempt=number, due_at=T0)
    return deliver(envelope, job, subjects=subjects, scheduler=setup.scheduler, send=receiver)


def dead_letters(setup: Setup) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs.receive_message(
        QueueUrl=setup.dead_letter_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])


def test_the_worst_case_of_one_delivery_covers_the_post_and_the_aws_calls_around_it() -> None:
    # Given the longest one POST may take (DNS, every connect tried, the read) and what the AWS calls add
    needed = ssrf.MAX_REQUEST_SECONDS + AWS_CALLS_MARGIN_SECONDS
    # Then the budget the delivery queue's batch and shutdown margin are sized from covers both
    assert needed <= contract.WEBHOOK_DELIVERY_MAX_SECONDS
    assert timedelta(seconds=contract.WEBHOOK_DELIVERY_MAX_SECONDS) == MAX_DELIVERY_DURATION


def test_an_answered_attempt_is_signed_recorded_and_the_delivery_job_done(setup: Setup) -> None:
    # Given an order that shipped, whose webhook's first attempt is due
    subjects, receiver = Subjects(), Receiver()
    subjects.shipped("ord-1")
    # When the attempt runs
    outcome = attempt(subjects, setup, receiver, "ord-1", 1)
    # Then the subject's event was posted to its callback, signed with the secret, under its message id
    [request] = receiver.requests
    assert (request["url"], request["body"]) == (CALLBACK, subjects.events["ord-1"].body)
    assert request["headers"]["webhook-id"] == "msg_ord-1"
    Verifier(setup.secret).verify(request["body"], request["headers"])
    # And the attempt is recorded on the subject as delivered, and the delivery job is done
    assert outcome == {"job_id": "ord-1", "attempt": 1, "outcome": "delivered"}
    state = subjects.states["ord-1"]
    assert state.status == WebhookStatus.DELIVERED and state.delivered_at == "2030-01-01T12:00:00Z"
    assert state.attempts == (DeliveryAttempt(1, "2030-01-01T12:00:00Z", 204, None),)
    assert setup.scheduler.status(delivery_job_key("ord-1", 1)) == "done"


def test_a_failed_attempt_schedules_the_next_after_its_delay(setup: Setup) -> None:
    # Given a receiver that answers 503
    subjects, receiver = Subjects(), Receiver(statuses=[503])
    subjects.shipped("ord-2")
    # When attempt 2 fails
    subjects.states["ord-2"] = replace(subjects.states["ord-2"], attempts=(DeliveryAttempt(1, "x", 503),))
    outcome = attempt(subjects, setup, receiver, "ord-2", 2)
    # Then it is recorded and attempt 3 waits 5 minutes (±10 %), on Scheduler (over a minute)
    assert outcome["outcome"] == "scheduled"
    job = setup.scheduler.store.get(delivery_job_key("ord-2", 3))
    assert job is not None and job["via"] == {"S": "scheduler"}
    due = datetime.fromisoformat(job["due_at"]["S"])
    assert RETRY_DELAYS[1] * 0.9 <= due - T0 <= RETRY_DELAYS[1] * 1.1
    assert dead_letters(setup) == []


def test_the_last_failed_attempt_dead_letters_the_delivery_with_its_reason(setup: Setup) -> None:
    # Given every attempt but the last already failed
    subjects, receiver = Subjects(), Receiver(error=ssrf.DeliveryError("connection refused"))
    subjects.shipped("ord-3")
    failed = tuple(DeliveryAttempt(n, "x", 500) for n in range(1, MAX_ATTEMPTS))
    subjects.states["ord-3"] = replace(subjects.states["ord-3"], attempts=failed)
    # When the last attempt cannot connect
    outcome = attempt(subjects, setup, receiver, "ord-3", MAX_ATTEMPTS)
    # Then the webhook failed, nothing more is scheduled, and the DLQ says why
    assert outcome["outcome"] == "callback_failed"
    assert subjects.states["ord-3"].attempts[-1].error == "connection refused"
    assert setup.scheduler.store.get(delivery_job_key("ord-3", MAX_ATTEMPTS + 1)) is None
    [message] = dead_letters(setup)
    reason = message["MessageAttributes"]["error-message"]["StringValue"]
    assert reason == f"webhook failed after {MAX_ATTEMPTS} attempt(s); last: connection refused"
    assert message["MessageAttributes"]["job-id"]["StringValue"] == "ord-3"


def test_a_callback_that_became_unsafe_fails_at_once(setup: Setup) -> None:
    subjects, receiver = Subjects(), Receiver(error=ssrf.UnsafeCallbackUrlError("resolves to 10.0.0.8"))
    subjects.shipped("ord-4")
    assert attempt(subjects, setup, receiver, "ord-4", 1)["outcome"] == "callback_failed"
    assert len(dead_letters(setup)) == 1


def test_nothing_is_sent_for_a_subject_without_an_event_or_an_unknown_one(setup: Setup) -> None:
    # Given an order that has a callback but has not shipped, and an id nobody knows
    subjects, receiver = Subjects(), Receiver()
    subjects.states["ord-5"] = WebhookState.pending(CALLBACK)
    # When their deliveries run
    outcomes = [attempt(subjects, setup, receiver, order_id, 1)["outcome"] for order_id in ("ord-5", "ord-x")]
    # Then nothing is posted or recorded
    assert outcomes == ["skipped", "skipped"]
    assert receiver.requests == [] and subjects.states["ord-5"].attempts == ()


def test_an_attempt_recorded_before_only_redoes_its_follow_up(setup: Setup) -> None:
    # Given attempt 1 recorded as failed by a run that died before scheduling attempt 2
    subjects, receiver = Subjects(), Receiver()
    subjects.shipped("ord-6")
    subjects.states["ord-6"] = replace(subjects.states["ord-6"], attempts=(DeliveryAttempt(1, "x", 500),))
    # When attempt 1 is delivered again
    outcome = attempt(subjects, setup, receiver, "ord-6", 1)
    # Then it posts nothing and schedules attempt 2
    assert outcome["outcome"] == "resumed"
    assert receiver.requests == []
    assert setup.scheduler.status(delivery_job_key("ord-6", 2)) == "pending"
