"""The job API on the local API (127.0.0.1, the deployed REST API's Lambda proxy) and signed webhooks:
respond at once, poll the job's progress, and receive the result as a Standard Webhooks delivery that
a receiver verifies with the `standardwebhooks` library. Retries after 5 s go through an SQS delay;
later ones through EventBridge Scheduler, which the test drives with the local clock."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from asyncstack.localcloud_extension import webhook_secret
from demo.scenarios import WebhookReceiver, api_request, verify_webhook
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

TIMEOUT = 90.0
# The retry schedule after the first two attempts (5 s, then these), as shared.webhook_delivery has it.
LATER_RETRIES = [
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
]


@pytest.fixture
def receiver_factory(cloud: LocalCloud) -> Iterator[Any]:
    started: list[WebhookReceiver] = []

    def start(failures: int) -> WebhookReceiver:
        started.append(WebhookReceiver(failures, clock=cloud.clock))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def _start_export(cloud: LocalCloud, callback_url: str) -> dict[str, Any]:
    key = f"e2e-{uuid.uuid4().hex}"
    status, headers, body = api_request(
        cloud,
        "POST",
        "/v1/exports",
        {"chunk_size": 50, "callback_url": callback_url},
        **{"Idempotency-Key": key},
    )
    assert status == 202, body
    assert headers["Location"] == body["status_url"]
    # A client retry with the same key gets the same job
    again_status, again_headers, again = api_request(
        cloud,
        "POST",
        "/v1/exports",
        {"chunk_size": 50, "callback_url": callback_url},
        **{"Idempotency-Key": key},
    )
    assert (again_status, again["job_id"], again_headers.get("Idempotent-Replayed")) == (
        202,
        body["job_id"],
        "true",
    )
    return dict(body)


def _job(cloud: LocalCloud, status_url: str) -> dict[str, Any]:
    status, _, job = api_request(cloud, "GET", status_url)
    assert status == 200, job
    return dict(job)


def _wait_for_attempts(
    cloud: LocalCloud, receiver: WebhookReceiver, count: int, status_url: str
) -> dict[str, Any]:
    cloud.wait_until(lambda: len(receiver.received) >= count, TIMEOUT, f"webhook attempt {count}")
    cloud.wait_until(
        lambda: len((_job(cloud, status_url).get("webhook") or {}).get("attempts", [])) >= count,
        TIMEOUT, f"attempt {count} to be recorded",
    )  # fmt: skip
    return _job(cloud, status_url)


def _advance_to_next_attempt(cloud: LocalCloud, delay: timedelta) -> None:
    """Move the local clock past a retry's due time (plus jitter) and let the scheduler fire it."""
    cloud.clock.advance(delay * 1.1 + timedelta(seconds=5))
    cloud.scheduler.fire_due()


def test_an_export_is_polled_to_the_end_and_its_webhook_arrives_signed_on_the_third_attempt(
    cloud: LocalCloud, receiver_factory: Any
) -> None:
    secret = webhook_secret(cloud)
    assert secret and secret.startswith("whsec_")
    # Given a receiver that fails its first two deliveries
    receiver = receiver_factory(failures=2)
    # When an export is requested on the local API with a callback
    started = _start_export(cloud, receiver.url)
    status_url = started["status_url"]
    # Then polling shows it progress and finish
    seen: list[str] = []

    def finished() -> bool:
        job = _job(cloud, status_url)
        seen.append(job["status"])
        return job["status"] in ("SUCCEEDED", "FAILED")

    cloud.wait_until(finished, TIMEOUT, "the export to finish", poll=0.05)
    job = _job(cloud, status_url)
    assert job["status"] == "SUCCEEDED" and job["progress"]["percent"] == 100
    assert job["result"]["key"].endswith("report.csv")
    # And the first delivery fails at once, the second after 5 s (an SQS delay), both recorded
    job = _wait_for_attempts(cloud, receiver, 2, status_url)
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [500, 500]
    # And the third waits for its time on the local clock, which the worker reads too (earlier tests
    # may have moved it days ahead: the worker dates the retry from there)
    assert job["webhook"]["status"] == "scheduled"
    # When the local clock reaches the third attempt's time (5 min later, EventBridge Scheduler)
    _advance_to_next_attempt(cloud, LATER_RETRIES[0])
    job = _wait_for_attempts(cloud, receiver, 3, status_url)
    # Then it is delivered, and the job says so
    assert job["webhook"]["status"] == "delivered"
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [500, 500, 204]
    # And every delivery verifies with the printed secret, carries the same webhook-id and the job's result
    payloads = [
        verify_webhook(secret, delivery.body, delivery.headers, now=delivery.clock_at)
        for delivery in receiver.received
    ]
    assert len({delivery.headers["webhook-id"] for delivery in receiver.received}) == 1
    assert payloads[-1]["type"] == "export.completed"
    assert payloads[-1]["data"]["job_id"] == started["job_id"]
    assert payloads[-1]["data"]["result"]["key"] == job["result"]["key"]


def test_a_receiver_that_always_fails_ends_in_the_webhook_dlq_and_the_job_shows_callback_failed(
    cloud: LocalCloud, receiver_factory: Any
) -> None:
    outputs = cloud.stack_outputs()
    # Given a receiver that never accepts a delivery
    receiver = receiver_factory(failures=1000)
    started = _start_export(cloud, receiver.url)
    status_url = started["status_url"]
    # When every attempt comes due: at once, after 5 s, then on the local clock over 17.5 hours
    _wait_for_attempts(cloud, receiver, 2, status_url)
    for attempt, delay in enumerate(LATER_RETRIES, start=3):
        _advance_to_next_attempt(cloud, delay)
        _wait_for_attempts(cloud, receiver, attempt, status_url)
    # Then after the seventh attempt the job shows callback_failed, with every attempt recorded
    cloud.wait_until(
        lambda: _job(cloud, status_url)["webhook"]["status"] == "callback_failed", TIMEOUT, "callback_failed"
    )
    job = _job(cloud, status_url)
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [500] * 7
    assert all(a["at"] for a in job["webhook"]["attempts"])
    # And the delivery sits in the webhook DLQ with the reason (read by the job's id: a count of the queue
    # also moves as older dead letters expire while the clock runs 17.5 hours ahead)
    mine: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        # Each receive hides what it got, so the next one reads further: the DLQ may hold more than ten
        # older dead letters (the chaos run's), and the same ten would come back every time otherwise.
        received = cloud.client("sqs").receive_message(
            QueueUrl=outputs["WebhookDeadLetterQueueUrl"], MaxNumberOfMessages=10, MessageAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
        mine.extend(
            m for m in received if m["MessageAttributes"]["job-id"]["StringValue"] == started["job_id"]
        )
        return bool(mine)

    cloud.wait_until(dead_lettered, TIMEOUT, "the job's delivery in the webhook DLQ")
    assert len(mine) == 1
    assert mine[0]["MessageAttributes"]["error-type"]["StringValue"] == "CallbackFailed"
    # And no further attempt comes
    assert len(receiver.received) == 7


def test_the_api_answers_problems_and_refuses_anonymous_calls(cloud: LocalCloud) -> None:
    # An unknown route: 404 problem document
    status, headers, body = api_request(cloud, "GET", "/v1/nothing-here")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")
    # A schema-invalid order: 422 with the field errors
    status, _, body = api_request(cloud, "POST", "/v1/orders", {"order_id": "o-1"})
    assert status == 422 and body["errors"]
    # A callback to the cloud metadata address: refused
    status, _, body = api_request(
        cloud, "POST", "/v1/exports", {"callback_url": "http://169.254.169.254/latest"}
    )
    assert status == 422, body
    # Without the API key: API Gateway's 403, the function never runs
    assert cloud.api is not None
    request = urllib.request.Request(cloud.api.url + "/v1/exports/exp-x", method="GET")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
