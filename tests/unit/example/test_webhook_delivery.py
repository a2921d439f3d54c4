"""Export webhooks end to end (shared/webhook_delivery.py on asyncstack/runtime/webhooks/delivery.py,
functions/webhook_delivery) on moto: the export jobs table,
the delivery jobs' queue, table and schedule group, Secrets Manager and the webhook DLQ, with a real
receiver on 127.0.0.1 (WEBHOOK_ALLOW_INSECURE=true, as in the local cloud) that verifies signatures
with the ``standardwebhooks`` reference library."""

from __future__ import annotations

import importlib
import itertools
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from asyncstack import contract
from asyncstack.runtime import settings
from asyncstack.runtime.events import EventEnvelope, decode_event
from asyncstack.runtime.jobs import (
    MAX_SQS_DELAY_SECONDS,
    JobBusyError,
    JobConfigError,
    JobScheduler,
    schedule_job,
)
from asyncstack.runtime.webhooks import (
    DELIVERY_JOB_TYPE,
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    DeliveryJob,
    clear_secret_cache,
    delivery_job_key,
    delivery_scheduler,
    new_secret,
    next_delay,
)
from shared import config
from shared.exports import ExportJobs, ExportRequest, fail_export, run_export
from shared.webhook_delivery import deliver, event_body
from tests.unit.conftest import REGION, AwsFaults, WorkQueueFixture, context, make_table, make_work_queue

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
EXPORT_JOBS = "export-jobs"
SOURCE = "analytics"
BUCKET = "exports"
JOBS_TABLE = "webhook-jobs"
GROUP = "webhooks"
ACCEPTS = {DELIVERY_JOB_TYPE: DeliveryJob}


def _client(service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name=REGION)


# -- the receiver ------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1: answers ``fail_with`` to the first ``failures`` requests, then 204.
    It holds ``secrets`` (set once the signing secret exists) and verifies every request with them."""

    failures: int = 0
    fail_with: int = 500
    secrets: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/export?token=t0k"

    def verified(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(
                    {"path": self.path, "headers": headers, "body": body,
                     "verified": receiver.verified(body, headers)}
                )  # fmt: skip
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(receiver.fail_with if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    queue: WorkQueueFixture  # the delivery jobs' queue (and its DLQ)
    webhook_dlq: str
    secret_arn: str
    secret: str


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def stack(
    aws: None, clock: time_machine.Traveller, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """What the stack gives the export worker and the delivery worker, on moto."""
    make_table(SOURCE, "event_id")
    make_table(EXPORT_JOBS, "job_id")
    _client("s3").create_bucket(Bucket=BUCKET)
    queue = make_work_queue("webhook-jobs")
    make_table(JOBS_TABLE, "job_key", ttl="expires_at")
    _client("scheduler").create_schedule_group(Name=GROUP)
    sqs = _client("sqs")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=queue.dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    webhook_dlq = sqs.create_queue(QueueName="webhook-dlq")["QueueUrl"]
    secret = new_secret()  # the stack generates the secret's value at deploy time
    secret_arn = _client("secretsmanager").create_secret(
        Name="webhook-signing", SecretString=json.dumps({"current": secret, "previous": None})
    )["ARN"]
    for name, value in {
        config.EXPORT_SOURCE_TABLE_NAME: SOURCE,
        contract.LONG_RUNNING_JOBS_TABLE_NAME: EXPORT_JOBS,
        contract.LONG_RUNNING_RESULTS_BUCKET: BUCKET,
        "JOBS_QUEUE_URL": queue.url,
        "JOBS_QUEUE_ARN": queue.arn,
        "JOBS_SCHEDULE_GROUP": GROUP,
        "JOBS_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/webhook-scheduler",
        "JOBS_DEAD_LETTER_ARN": dlq_arn["QueueArn"],
        "JOBS_TABLE_NAME": JOBS_TABLE,
        "JOB_TYPES": DELIVERY_JOB_TYPE,
        "WEBHOOK_SECRET_ARN": secret_arn,
        "WEBHOOK_DEAD_LETTER_QUEUE_URL": webhook_dlq,
        "WEBHOOK_ALLOW_INSECURE": "true",
        "QUEUE_URL": queue.url,
        "DEAD_LETTER_QUEUE_URL": queue.dlq_url,
        "IDEMPOTENCY_TABLE_NAME": make_table("idempotency", "id", ttl="expiration"),
    }.items():
        monkeypatch.setenv(name, value)
    clear_secret_cache()
    receiver.secrets = [secret]
    yield Stack(queue=queue, webhook_dlq=webhook_dlq, secret_arn=secret_arn, secret=secret)
    clear_secret_cache()


def finish_export(job_id: str, callback_url: str | None) -> dict[str, Any]:
    """Create a job and let the export worker run it to SUCCEEDED (an empty source table)."""
    ExportJobs().create(job_id, ExportRequest(chunk_size=5, callback_url=callback_url))
    outcome = run_export(job_id, context())
    assert outcome["status"] == "SUCCEEDED"
    return outcome


def webhook(job_id: str) -> dict[str, Any]:
    job = ExportJobs().get(job_id)
    assert job is not None
    return job["webhook"]


def job_items() -> dict[str, dict[str, Any]]:
    """The delivery jobs' state by job key."""
    items = _client("dynamodb").scan(TableName=JOBS_TABLE)["Items"]
    return {
        item["job_key"]["S"]: {
            "status": item["status"]["S"],
            "via": item["via"]["S"],
            "due_at": datetime.fromisoformat(item["due_at"]["S"]),
            "scheduled_at": datetime.fromisoformat(item["scheduled_at"]["S"]),
            "schedule_name": item.get("schedule_name", {}).get("S"),
        }
        for item in items
    }


def fresh_handler() -> ModuleType:
    return importlib.reload(importlib.import_module("functions.webhook_delivery.handler"))


def handle(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the worker as Lambda does, deleting the records it reports done."""
    response = fresh_handler().handler(event, context(name="webhook-delivery-fn"))
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for record in event["Records"]:
        if record["messageId"] not in failed:
            stack.queue.sqs.delete_message(QueueUrl=stack.queue.url, ReceiptHandle=record["receiptHandle"])
    return response


def run_next_attempt(stack: Stack, clock: time_machine.Traveller) -> str:
    """Let the one waiting delivery come due, by its path, and run it; returns its job key."""
    [(key, job)] = [(k, j) for k, j in job_items().items() if j["status"] == "pending"]
    clock.move_to(job["due_at"] + timedelta(seconds=1))
    if job["via"] == "scheduler":  # what the one-time schedule does when due: put its Input on the queue
        scheduler = _client("scheduler")
        schedule = scheduler.get_schedule(Name=job["schedule_name"], GroupName=GROUP)
        scheduler.delete_schedule(Name=job["schedule_name"], GroupName=GROUP)
        stack.queue.send(schedule["Target"]["Input"])
    event = stack.queue.receive_event()
    assert [json.loads(r["body"])["event_id"] for r in event["Records"]] == [key]
    assert handle(stack, event) == {"batchItemFailures": []}
    return key


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return (
        _client("sqs")
        .receive_message(QueueUrl=stack.webhook_dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages", [])
    )


def queued_count(stack: Stack) -> int:
    attributes = _client("sqs").get_queue_attributes(QueueUrl=stack.queue.url, AttributeNames=["All"])[
        "Attributes"
    ]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesDelayed"]
    )


def envelope_for(job_id: str, attempt: int) -> tuple[EventEnvelope, DeliveryJob]:
    body = {
        "event_id": delivery_job_key(job_id, attempt), "type": DELIVERY_JOB_TYPE, "source": "asyncstack.jobs",
        "occurred_at": T0.isoformat(), "data": {"job_id": job_id, "attempt": attempt, "due_at": T0.isoformat()},
    }  # fmt: skip
    envelope, data = decode_event(json.dumps(body), ACCEPTS)
    assert isinstance(data, DeliveryJob)
    return envelope, data


# -- the retry schedule ------------------------------------------------------------------------


def test_the_retry_schedule_is_fixed_with_ten_percent_jitter() -> None:
    # Given attempts 1..7
    rng = random.Random(7)
    # When the delay after each is drawn many times
    for attempt, base in enumerate(RETRY_DELAYS, start=1):
        delays = [next_delay(attempt, rng=rng) for _ in range(200)]
        # Then it stays within 10 % of the fixed delay, and the jitter is used
        assert all(d is not None and base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1
    # And there is nothing after the last attempt, and no attempt 0
    assert [next_delay(n) is None for n in range(1, MAX_ATTEMPTS + 2)] == [False] * 6 + [True, True]
    assert MAX_ATTEMPTS == 7
    with pytest.raises(ValueError):
        next_delay(0)


def test_the_nominal_delays_are_5s_5min_30min_2h_5h_10h() -> None:
    class Middle(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return (a + b) / 2

    assert [next_delay(n, rng=Middle()) for n in range(1, 7)] == [
        timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
        timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
    ]  # fmt: skip


def test_a_lower_sqs_limit_sends_minute_long_delays_through_the_scheduler(stack: Stack) -> None:
    # Given the delivery scheduler (at most 60 s on SQS)
    scheduler = delivery_scheduler()
    assert scheduler.max_sqs_delay_seconds == 60
    # When jobs are due in 60 s and 61 s
    at_limit = schedule_job(DELIVERY_JOB_TYPE, {}, key="a", delay=timedelta(seconds=60), scheduler=scheduler)
    past = schedule_job(DELIVERY_JOB_TYPE, {}, key="b", delay=timedelta(seconds=61), scheduler=scheduler)
    # Then 60 s is an SQS delay and 61 s a schedule; the default scheduler still keeps 15 minutes on SQS
    assert (at_limit.via, past.via) == ("sqs", "scheduler")
    assert JobScheduler.from_environment().max_sqs_delay_seconds == MAX_SQS_DELAY_SECONDS
    for invalid in (-1, MAX_SQS_DELAY_SECONDS + 1):
        with pytest.raises(JobConfigError, match="max_sqs_delay_seconds"):
            JobScheduler(**{**vars(scheduler), "max_sqs_delay_seconds": invalid})


# -- the request and the job -------------------------------------------------------------------


def test_a_callback_is_validated_and_kept_in_the_webhook_section(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request with a callback (plain http to loopback: the local setting is on)
    request = ExportRequest(chunk_size=5, callback_url="http://127.0.0.1:9999/cb")
    # When the job is created
    job = ExportJobs().create("exp-cb", request)
    # Then the callback is in its own section, pending, and not among the params
    assert job["params"] == {"chunk_size": 5}
    assert job["webhook"] == {
        "callback_url": "http://127.0.0.1:9999/cb", "status": "pending", "attempts": [], "delivered_at": None,
    }  # fmt: skip
    assert ExportJobs().get("exp-cb") == job
    # And without the local setting, or with a hostile URL, the request is refused
    monkeypatch.delenv("WEBHOOK_ALLOW_INSECURE")
    settings.load.cache_clear()  # a new execution environment, which reads its settings afresh
    for url in ("http://127.0.0.1:9999/cb", "https://169.254.169.254/", "https://u:p@example.com/"):
        with pytest.raises(ValueError, match="callback"):
            ExportRequest(callback_url=url)
    with pytest.raises(ValueError):
        ExportRequest.model_validate({"callback_url": "https://example.com/", "extra": 1})


def test_a_job_without_a_callback_needs_no_delivery_settings(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an export worker without the webhook jobs' settings
    for name in ("JOBS_QUEUE_URL", "JOBS_QUEUE_ARN", "JOBS_SCHEDULE_GROUP", "JOB_TYPES"):
        monkeypatch.delenv(name)
    # When a job without a callback finishes, and fails again
    finish_export("exp-plain", None)
    job = fail_export("exp-plain", {"Error": "States.Timeout"})
    # Then nothing was queued and the job has no webhook section
    assert job["webhook"] is None
    assert job_items() == {}


def test_a_retried_finish_queues_the_first_delivery_once(stack: Stack) -> None:
    # Given a job with a callback that finished (the first delivery is queued, 1 s out)
    finish_export("exp-twice", "http://127.0.0.1:9999/cb")
    # When the workflow retries the last run (its result was lost) and then runs the fail step anyway
    again = run_export("exp-twice", context())
    failed = fail_export("exp-twice", {"Error": "States.Timeout"})
    # Then one delivery is queued, by SQS, and the webhook says scheduled
    assert again["status"] == failed["status"] == "SUCCEEDED"
    items = job_items()
    assert list(items) == ["exp-twice.webhook.1"]
    assert items["exp-twice.webhook.1"]["via"] == "sqs"
    assert items["exp-twice.webhook.1"]["due_at"] == T0 + timedelta(seconds=1)
    assert queued_count(stack) == 1
    assert webhook("exp-twice")["status"] == "scheduled"


# -- deliveries --------------------------------------------------------------------------------


def test_the_first_delivery_is_signed_and_marks_the_webhook_delivered(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller
) -> None:
    # Given a job with a callback that finished
    finish_export("exp-ok", receiver.url)
    # When its first delivery comes due and the worker runs it
    key = run_next_attempt(stack, clock)
    # Then the receiver got one request that verifies with the signing secret
    assert key == "exp-ok.webhook.1"
    [request] = receiver.requests
    assert request["verified"] is True
    assert request["path"] == "/hooks/export?token=t0k"
    headers = request["headers"]
    assert headers["webhook-id"] == "msg_exp-ok_SUCCEEDED"
    assert headers["webhook-timestamp"] == str(int((T0 + timedelta(seconds=2)).timestamp()))
    assert headers["content-type"] == "application/json"
    assert len(headers["webhook-signature"].split(" ")) == 1
    # And the body is the compact event with the job's public view, without its webhook section
    job = ExportJobs().get("exp-ok")
    assert job is not None
    assert request["body"] == event_body(job)
    event = json.loads(request["body"])
    assert event["type"] == "export.completed"
    assert event["timestamp"] == job["finished_at"]
    assert event["data"] == {k: v for k, v in job.items() if k != "webhook"}
    assert b" " not in request["body"]
    # And the webhook is delivered, with the attempt recorded, and the delivery job done
    assert job["webhook"]["status"] == "delivered"
    assert job["webhook"]["delivered_at"] == "2030-01-01T12:00:02Z"
    assert job["webhook"]["attempts"] == [
        {"attempt": 1, "at": "2030-01-01T12:00:02Z", "status_code": 204, "error": None}
    ]
    assert job_items()[key]["status"] == "done"
    assert dead_letters(stack) == []


def test_a_failed_job_sends_export_failed(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller
) -> None:
    # Given a job with a callback that the workflow failed
    ExportJobs().create("exp-bad", ExportRequest(callback_url=receiver.url))
    cause = "Task timed out after 300.00 seconds in arn:aws:lambda:us-east-1:123456789012:function:Export"
    fail_export("exp-bad", {"Error": "Sandbox.Timedout", "Cause": cause})
    # When its delivery runs
    run_next_attempt(stack, clock)
    # Then the receiver got export.failed with the public error (no cause), under the failed job's message id
    [request] = receiver.requests
    event = json.loads(request["body"])
    assert (event["type"], event["data"]["status"]) == ("export.failed", "FAILED")
    assert event["data"]["error"] == {"code": "timeout", "message": "The export did not finish in time."}
    assert b"123456789012" not in request["body"] and b"Task timed out" not in request["body"]
    assert request["headers"]["webhook-id"] == "msg_exp-bad_FAILED"
    assert request["verified"] is True
    assert webhook("exp-bad")["status"] == "delivered"


def test_failures_are_retried_after_5s_by_sqs_then_5min_by_the_scheduler(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller
) -> None:
    # Given a receiver that fails twice (HTTP 503), then accepts
    receiver.failures, receiver.fail_with = 2, 503
    finish_export("exp-retry", receiver.url)
    # When the first delivery runs
    first_at = T0 + timedelta(seconds=2)
    run_next_attempt(stack, clock)
    # Then attempt 2 waits about 5 s as a delayed SQS message
    second = job_items()["exp-retry.webhook.2"]
    assert (second["status"], second["via"]) == ("pending", "sqs")
    assert timedelta(seconds=4.5) <= second["due_at"] - first_at <= timedelta(seconds=5.5)
    assert webhook("exp-retry")["status"] == "scheduled"
    # When attempt 2 runs (and fails)
    run_next_attempt(stack, clock)
    second_at = second["due_at"] + timedelta(seconds=1)
    # Then attempt 3 waits about 5 minutes as a one-time schedule on the delivery jobs' queue
    third = job_items()["exp-retry.webhook.3"]
    assert (third["status"], third["via"]) == ("pending", "scheduler")
    assert timedelta(seconds=270) <= third["due_at"] - second_at <= timedelta(seconds=330)
    schedule = _client("scheduler").get_schedule(Name=third["schedule_name"], GroupName=GROUP)
    assert schedule["Target"]["Arn"] == stack.queue.arn
    assert json.loads(schedule["Target"]["Input"])["data"] == {
        "job_id": "exp-retry", "attempt": 3, "due_at": third["due_at"].isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    # When attempt 3 runs
    run_next_attempt(stack, clock)
    # Then the webhook is delivered; every attempt is recorded with its time, status code and error
    hook = webhook("exp-retry")
    assert hook["status"] == "delivered"
    assert [(a["attempt"], a["status_code"], a["error"]) for a in hook["attempts"]] == [
        (1, 503, None), (2, 503, None), (3, 204, None),
    ]  # fmt: skip
    times = [datetime.fromisoformat(a["at"]) for a in hook["attempts"]]
    assert times == sorted(times)
    assert times[0] == first_at
    # And each attempt carried the same message id and body, signed anew at its own timestamp
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1
    assert len({r["body"] for r in receiver.requests}) == 1
    assert len({r["headers"]["webhook-timestamp"] for r in receiver.requests}) == 3
    assert all(r["verified"] for r in receiver.requests)
    assert all(item["status"] == "done" for item in job_items().values())


def test_after_the_last_attempt_the_webhook_fails_and_goes_to_the_dlq(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller
) -> None:
    # Given a receiver that always answers 500
    receiver.failures = 100
    finish_export("exp-down", receiver.url)
    # When every attempt comes due and runs
    keys = [run_next_attempt(stack, clock) for _ in range(MAX_ATTEMPTS)]
    # Then there were 7 attempts, with the nominal delays between them (±10 %)
    assert keys == [delivery_job_key("exp-down", n) for n in range(1, 8)]
    hook = webhook("exp-down")
    times = [datetime.fromisoformat(a["at"]) for a in hook["attempts"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, nominal in zip(gaps, RETRY_DELAYS, strict=True):
        assert nominal * 0.9 <= gap - timedelta(seconds=1) <= nominal * 1.1
    assert [a["status_code"] for a in hook["attempts"]] == [500] * 7
    # And the webhook is callback_failed, nothing more is scheduled, the last delivery job is done
    assert hook["status"] == "callback_failed"
    assert hook["delivered_at"] is None
    assert [k for k, j in job_items().items() if j["status"] != "done"] == []
    assert _client("scheduler").list_schedules(GroupName=GROUP)["Schedules"] == []
    # And the webhook DLQ holds the last delivery with the reason
    [message] = dead_letters(stack)
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["error-type"] == "CallbackFailed"
    assert attributes["error-message"] == "webhook failed after 7 attempt(s); last: HTTP 500"
    assert attributes["job-id"] == "exp-down"
    assert attributes["job-key"] == "exp-down.webhook.7"
    assert json.loads(message["Body"])["data"]["attempt"] == 7


def test_network_errors_are_recorded_and_retried(stack: Stack, clock: time_machine.Traveller) -> None:
    # Given a callback on a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    finish_export("exp-refused", f"http://127.0.0.1:{port}/cb")
    # When the first delivery runs
    run_next_attempt(stack, clock)
    # Then the attempt records the error and no status code, and attempt 2 is scheduled
    hook = webhook("exp-refused")
    assert hook["attempts"] == [
        {"attempt": 1, "at": "2030-01-01T12:00:02Z", "status_code": None, "error": "connection refused"}
    ]
    assert hook["status"] == "scheduled"
    assert job_items()["exp-refused.webhook.2"]["status"] == "pending"


def test_a_callback_that_became_unsafe_fails_at_once(
    stack: Stack, clock: time_machine.Traveller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job whose callback name now resolves to a private address (DNS changed since the request)
    finish_export("exp-rebound", "https://hooks.example.com/cb")
    real = socket.getaddrinfo

    def rebound(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.8", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    # When its first delivery runs
    run_next_attempt(stack, clock)
    # Then there is no retry: the webhook failed with the reason, and the delivery is dead-lettered
    hook = webhook("exp-rebound")
    assert hook["status"] == "callback_failed"
    [attempt] = hook["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("unsafe callback URL: ")
    assert "10.0.0.8" in attempt["error"]
    assert [k for k, j in job_items().items() if j["status"] == "pending"] == []
    [message] = dead_letters(stack)
    reason = message["MessageAttributes"]["error-message"]["StringValue"]
    assert reason.startswith("webhook failed after 1 attempt(s); last: unsafe callback URL")


# -- duplicates and crashes ----------------------------------------------------------------------


def test_a_delivery_delivered_twice_posts_once(stack: Stack, receiver: Receiver) -> None:
    # Given a finished job's first delivery, delivered twice (SQS is at-least-once)
    finish_export("exp-dup", receiver.url)
    envelope, job = envelope_for("exp-dup", 1)
    # When the worker runs both
    first = deliver(envelope, job)
    second = deliver(envelope, job)
    # Then the receiver got one request
    assert (first["outcome"], second["outcome"]) == ("delivered", "skipped")
    assert len(receiver.requests) == 1
    assert len(webhook("exp-dup")["attempts"]) == 1


class FailingSqs:
    def send_message(self, **_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "simulated"}}, "SendMessage")


def test_a_failure_after_recording_an_attempt_still_schedules_the_next(
    stack: Stack, receiver: Receiver
) -> None:
    # Given a failing receiver, and a worker whose scheduling of attempt 2 fails after attempt 1 was recorded
    receiver.failures = 1
    finish_export("exp-crash", receiver.url)
    envelope, job = envelope_for("exp-crash", 1)
    broken: Any = FailingSqs()
    with pytest.raises(ClientError):
        deliver(envelope, job, scheduler=JobScheduler(**{**vars(delivery_scheduler()), "sqs_client": broken}))
    assert webhook("exp-crash")["status"] == "scheduled"
    assert "exp-crash.webhook.2" not in job_items()
    # When the delivery is retried (the failed run released its claim)
    outcome = deliver(envelope, job)
    # Then it does not post again, but schedules attempt 2
    assert outcome["outcome"] == "resumed"
    assert len(receiver.requests) == 1
    assert job_items()["exp-crash.webhook.2"]["status"] == "pending"
    assert len(webhook("exp-crash")["attempts"]) == 1


def test_an_attempt_whose_recording_failed_is_made_again(
    stack: Stack, receiver: Receiver, aws_faults: AwsFaults
) -> None:
    """The defect this guards: a run that failed after its claim kept it, the redelivery was acknowledged
    as done, and the webhook stayed `scheduled` with no attempt, nothing queued and nothing in a DLQ."""
    # Given a receiver answering 500 once, and the write that records attempt 1 throttled
    receiver.failures = 1
    finish_export("exp-throttled", receiver.url)
    envelope, job = envelope_for("exp-throttled", 1)
    aws_faults.fail("dynamodb", "UpdateItem", when=lambda p: p["TableName"] == EXPORT_JOBS)
    with pytest.raises(ClientError):
        deliver(envelope, job)
    # When SQS delivers attempt 1 again
    outcome = deliver(envelope, job)
    # Then the attempt is made again and recorded, and the webhook is delivered
    assert aws_faults.injected == ["UpdateItem:ThrottlingException"]
    assert outcome["outcome"] == "delivered"
    assert len(receiver.requests) == 2
    assert [a["status_code"] for a in webhook("exp-throttled")["attempts"]] == [204]
    assert webhook("exp-throttled")["status"] == "delivered"


def test_a_delivery_held_by_a_run_that_died_comes_back_after_its_lease(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller
) -> None:
    # Given a delivery claimed by a run that died before posting (its claim is held for the lease)
    finish_export("exp-died", receiver.url)
    envelope, job = envelope_for("exp-died", 1)
    scheduler = delivery_scheduler()
    assert scheduler.claim(envelope.event_id) is not None
    # When the delivery comes back within the lease, and after it
    with pytest.raises(JobBusyError) as busy:
        deliver(envelope, job)
    clock.move_to(T0 + scheduler.claim_lease + timedelta(seconds=1))
    outcome = deliver(envelope, job)
    # Then it is retried (not acknowledged) until the lease ends, and then delivered once
    assert busy.value.retry_after_seconds == int(scheduler.claim_lease.total_seconds())
    assert outcome["outcome"] == "delivered"
    assert len(receiver.requests) == 1


def test_a_delivery_for_an_unknown_job_or_one_without_callback_does_nothing(
    stack: Stack, receiver: Receiver
) -> None:
    finish_export("exp-none", None)
    for job_id in ("exp-none", "exp-missing"):
        envelope, job = envelope_for(job_id, 1)
        schedule_job(DELIVERY_JOB_TYPE, {"job_id": job_id, "attempt": 1}, key=envelope.event_id,
                     delay=timedelta(0), scheduler=delivery_scheduler())  # fmt: skip
        assert deliver(envelope, job)["outcome"] == "skipped"
        assert job_items()[envelope.event_id]["status"] == "done"
    assert receiver.requests == []


# -- the samples in events/ ----------------------------------------------------------------------


def test_the_sample_delivery_job_is_what_the_worker_accepts(event_file: Any) -> None:
    envelope, job = decode_event(json.dumps(event_file("webhook-deliver-job.json")), ACCEPTS)
    assert isinstance(job, DeliveryJob)
    assert envelope.event_id == delivery_job_key(job.job_id, job.attempt)


def test_the_sample_event_has_the_shape_of_a_delivered_body(
    stack: Stack, receiver: Receiver, clock: time_machine.Traveller, event_file: Any
) -> None:
    # Given a delivered body
    finish_export("exp-demo-0001", receiver.url)
    run_next_attempt(stack, clock)
    delivered = json.loads(receiver.requests[0]["body"])
    # Then the sample has the same keys at every level, and the same kind of values
    sample = event_file("webhook-event-sample.json")

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        return type(value).__name__

    assert shape(sample) == shape(delivered)
    assert sample["data"]["job_id"] == "exp-demo-0001"
