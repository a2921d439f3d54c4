"""The dashboard's data endpoints and actions, over HTTP, on the deployed stack."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from demo.scenarios import api_request, history, saga, seed_analytics, sign_up, states_entered
from localcloud.cloud import LocalCloud
from shared.events import ORDER_CREATED, OrderLine
from shared.inventory import InventoryRepository
from tests.e2e.drive import order_event, purge_queue

pytestmark = pytest.mark.e2e

EVENTS = Path(__file__).resolve().parents[2] / "events"


def call(
    cloud: LocalCloud, method: str, path: str, body: Any = None, *, key: str | None = None,
    host: str | None = None, raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    """One request to the dashboard; an error status is returned, not raised."""
    assert cloud.dashboard is not None
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    if host is not None:
        headers["Host"] = host
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        cloud.dashboard.url.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            status, answer_headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        payload, status, answer_headers = error.read(), error.code, dict(error.headers)
    content_type = answer_headers.get("Content-Type", "")
    return status, answer_headers, json.loads(payload) if "json" in content_type else payload.decode()


def overview(cloud: LocalCloud) -> dict[str, Any]:
    status, _, body = call(cloud, "GET", "/api/overview")
    assert status == 200, body
    return dict(body)


def quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def queue_name(cloud: LocalCloud, output: str) -> str:
    return cloud.stack_outputs()[output].rsplit("/", 1)[-1]


def test_the_overview_shows_every_queue_function_and_workflow_with_dead_letter_queues_marked(
    cloud: LocalCloud,
) -> None:
    # Given the deployed stack, when the overview is read
    seen = overview(cloud)
    outputs = cloud.stack_outputs_by_stack()["AsyncStack"]  # the conformance probes may be deployed too
    queues = {q["name"]: q for q in seen["queues"]}
    # Then every queue is there with its counts, and every dead-letter queue is marked, including
    # those no redrive policy names (a topic's undeliverable queue, the schedules' and webhooks' DLQs)
    assert set(queues) == set(cloud.queues())
    dead_letter_outputs = [o for o in outputs if o.endswith("DeadLetterQueueUrl") or "Undeliverable" in o]
    assert len(dead_letter_outputs) >= 8
    for output in dead_letter_outputs:
        assert queues[queue_name(cloud, output)]["dlq"], output
    assert not queues[queue_name(cloud, "InventoryQueueUrl")]["dlq"]
    # And a work queue's DLQ redrives to its source queue; a topic's undeliverable queue has none
    assert queues[queue_name(cloud, "InventoryDeadLetterQueueUrl")]["redrive_to"] == queue_name(
        cloud, "InventoryQueueUrl"
    )
    assert queues[queue_name(cloud, "OrdersUndeliverableQueueUrl")]["redrive_to"] is None
    assert queues[queue_name(cloud, "InventoryQueueUrl")]["label"] == "InventoryQueue"
    for queue in seen["queues"]:
        assert {"visible", "in_flight", "delayed", "oldest_age_seconds"} <= set(queue)
    # And every deployed function and state machine, with their statistics
    assert {f["name"] for f in seen["functions"]} == set(cloud.functions())
    for function in seen["functions"]:
        assert {"invocations", "errors", "throttles", "cold_starts", "p50_ms", "p99_ms"} <= set(function)
    assert outputs["OrderWorkflowArn"] in {w["arn"] for w in seen["workflows"]}
    # And the permissions: the mode and how many calls were denied
    assert seen["iam"]["mode"] == cloud.permissions.mode and seen["iam"]["denied"] == sum(
        cloud.permissions.denied.values()
    )
    assert abs(datetime.fromisoformat(seen["now"]) - cloud.clock.now()) < timedelta(
        minutes=1
    )  # the local clock
    # And asyncstack's extension adds its two views, each with its script
    assert seen["panels"] == [{"name": "jobs", "title": "Jobs"}, {"name": "schedules", "title": "Schedules"}]
    for panel in seen["panels"]:
        status, headers, script = call(cloud, "GET", f"/panels/{panel['name']}.js")
        assert (status, headers["Content-Type"]) == (200, "text/javascript")
        assert f'window.localcloud.panel("{panel["name"]}"' in script


def test_a_dead_letter_queue_opens_without_receiving_its_messages(cloud: LocalCloud) -> None:
    # Given a schema-invalid order event (no lines) published to the orders topic
    event_id = f"evt-dash-poison-{uuid.uuid4().hex[:8]}"
    cloud.client("sns").publish(
        TopicArn=cloud.stack_outputs()["OrdersTopicArn"], Message=order_event(event_id, f"ord-{event_id}", []),
        MessageAttributes={"type": {"DataType": "String", "StringValue": ORDER_CREATED}},
    )  # fmt: skip
    dlq = queue_name(cloud, "InventoryDeadLetterQueueUrl")
    path = f"/api/queues/{quoted(dlq)}/messages"

    def ours() -> list[dict[str, Any]]:
        status, _, body = call(cloud, "GET", path)
        assert status == 200, body
        return [m for m in body["messages"] if event_id in m["body"]]

    # When the inventory DLQ is opened, once it holds the event
    cloud.wait_until(lambda: bool(ours()), 60, "the poison event in the inventory DLQ")
    [message] = ours()
    # Then the message shows its body, attributes, receive count and the reason the consumer attached
    assert json.loads(message["body"])["event_id"] == event_id
    assert message["error_type"] == "SchemaInvalid"
    assert "lines" in message["error_message"]
    assert message["attributes"]["error-type"] == "SchemaInvalid"
    assert message["receive_count"] == 0  # put there by the consumer, never received from the DLQ
    # And opening it again changed nothing: it was not received, so it is still visible, not in flight
    visible = cloud.queues()[dlq]["visible"]
    assert ours() == [message]
    assert cloud.queues()[dlq]["visible"] == visible
    assert cloud.queues()[dlq]["in_flight"] == 0


def test_redrive_moves_one_message_or_all_back_and_the_consumer_processes_them(cloud: LocalCloud) -> None:
    # Given two orders sitting in the inventory DLQ (as an outage would have left them), stock for both
    outputs = cloud.stack_outputs()
    dlq, source = queue_name(cloud, "InventoryDeadLetterQueueUrl"), queue_name(cloud, "InventoryQueueUrl")
    sqs = cloud.client("sqs")
    purge_queue(cloud, outputs["InventoryDeadLetterQueueUrl"])  # this test's messages only
    inventory = InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb"))
    inventory.put_stock("SKU-DASH", 10)
    run = uuid.uuid4().hex[:8]
    orders = [f"ord-dash-redrive-{run}-{n}" for n in range(2)]
    for n, order_id in enumerate(orders):
        sqs.send_message(
            QueueUrl=outputs["InventoryDeadLetterQueueUrl"],
            MessageBody=order_event(
                f"evt-{run}-{n}", order_id, [OrderLine(sku="SKU-DASH", quantity=1, unit_price_cents=500)]
            ),
        )
    _, _, listed = call(cloud, "GET", f"/api/queues/{quoted(dlq)}/messages")
    first = next(m["message_id"] for m in listed["messages"] if orders[0] in m["body"])
    # When the first is redriven by its id
    status, _, moved = call(
        cloud, "POST", f"/api/queues/{quoted(dlq)}/redrive", {"message_id": first}, key=cloud.dashboard_key
    )
    # Then only it moved to the source queue, and the consumer reserved stock for it
    assert status == 200, moved
    assert (moved["moved"], moved["failed"], moved["to"]) == (1, 0, source)
    cloud.wait_until(lambda: inventory.reservation(orders[0]) is not None, 60, "the redriven order")
    _, _, left = call(cloud, "GET", f"/api/queues/{quoted(dlq)}/messages")
    assert [orders[1] in m["body"] for m in left["messages"]] == [True]
    # When the rest is redriven
    status, _, moved = call(cloud, "POST", f"/api/queues/{quoted(dlq)}/redrive", {}, key=cloud.dashboard_key)
    # Then the DLQ is empty and the second order is processed too
    assert status == 200, moved
    assert (moved["moved"], moved["remaining"]) == (1, 0)
    cloud.wait_until(lambda: inventory.reservation(orders[1]) is not None, 60, "the second redriven order")
    # And a message id that is no longer there is a 404, not a silent success
    status, _, problem = call(
        cloud, "POST", f"/api/queues/{quoted(dlq)}/redrive", {"message_id": first}, key=cloud.dashboard_key
    )
    assert status == 404 and first in problem["detail"]


def test_an_execution_shows_its_steps_and_compensations_in_order(cloud: LocalCloud) -> None:
    # Given the demo's saga: one order confirmed, one rejected at confirmation and compensated
    assert saga(cloud, lambda _: None).ok
    machine = next(
        w for w in overview(cloud)["workflows"] if w["arn"] == cloud.stack_outputs()["OrderWorkflowArn"]
    )
    assert machine["by_status"]["FAILED"] >= 1 and machine["by_status"]["SUCCEEDED"] >= 1
    failed = next(e for e in machine["executions"] if e["status"] == "FAILED")
    # When that execution is opened
    status, _, execution = call(cloud, "GET", f"/api/executions/{quoted(failed['arn'])}")
    # Then its steps are the states it entered, in order, the compensations after the failed step marked
    assert status == 200, execution
    names = [step["name"] for step in execution["steps"]]
    assert names == states_entered(history(cloud, failed["arn"]))
    assert names == [
        "AcceptOrder", "ChargePayment", "ReserveInventory", "SendConfirmation",
        "ReleaseInventory", "RefundPayment", "NotifyFailure", "OrderFailed",
    ]  # fmt: skip
    compensating = [step["name"] for step in execution["steps"] if step["compensating"]]
    assert compensating == names[4:]
    by_name = {step["name"]: step for step in execution["steps"]}
    assert by_name["SendConfirmation"]["status"] == "failed"
    assert by_name["SendConfirmation"]["error"] == execution["error"] == "RecipientRejectedError"
    assert by_name["RefundPayment"]["status"] == "succeeded"
    # And each step has its timing: entered in order, never negative
    entered = [step["entered_at"] for step in execution["steps"]]
    assert entered == sorted(entered)
    assert all(step["duration_ms"] is not None and step["duration_ms"] >= 0 for step in execution["steps"])
    # And an execution that does not exist is a 404 problem
    status, headers, problem = call(cloud, "GET", f"/api/executions/{quoted(failed['arn'] + '-nope')}")
    assert (status, headers["Content-Type"]) == (404, "application/problem+json")
    assert "-nope" in problem["detail"]


def test_a_pending_delayed_job_is_listed_with_its_due_time_and_can_be_cancelled(cloud: LocalCloud) -> None:
    # Given a user who signs up now on the local clock: two follow-up jobs are scheduled days ahead
    user = f"u-dash-{uuid.uuid4().hex[:8]}"
    sign_up(cloud, user, cloud.clock.now())

    def pending() -> dict[str, dict[str, Any]]:
        return {
            j["job_key"]: j for j in overview(cloud)["schedules"]["pending"] if j["job_key"].startswith(user)
        }

    cloud.wait_until(lambda: len(pending()) == 2, 60, "the follow-up jobs")
    reminder = pending()[f"{user}.signup-reminder"]
    # Then the job shows when it is due and how it waits
    assert reminder["job_type"] == "job.signup_reminder"
    assert reminder["via"] == "scheduler" and reminder["schedule_name"]
    assert datetime.fromisoformat(reminder["due_at"]) > cloud.clock.now().astimezone(UTC)
    key = quoted(reminder["job_key"])
    # When it is cancelled without the key, or with a wrong one, nothing happens
    assert call(cloud, "POST", f"/api/schedules/{key}/cancel", {})[0] == 401
    assert call(cloud, "POST", f"/api/schedules/{key}/cancel", {}, key="not-the-key")[0] == 403
    assert reminder["job_key"] in pending()
    # When it is cancelled with the local key
    status, _, answer = call(cloud, "POST", f"/api/schedules/{key}/cancel", {}, key=cloud.dashboard_key)
    # Then it is cancelled: no longer pending, its schedule deleted, the other job untouched
    assert (status, answer["outcome"]) == (200, "cancelled")
    assert set(pending()) == {f"{user}.trial-expiry"}
    schedules = cloud.client("scheduler").list_schedules(
        GroupName=cloud.stack_outputs()["JobsScheduleGroupName"]
    )
    assert reminder["schedule_name"] not in {s["Name"] for s in schedules["Schedules"]}
    # And cancelling it again says why it cannot be
    status, _, problem = call(cloud, "POST", f"/api/schedules/{key}/cancel", {}, key=cloud.dashboard_key)
    assert status == 409 and "already cancelled" in problem["detail"]
    assert call(cloud, "POST", "/api/schedules/no-such-job/cancel", {}, key=cloud.dashboard_key)[0] == 404


def test_the_jobs_list_shows_an_export_as_its_status_endpoint_does(cloud: LocalCloud) -> None:
    # Given an export started through the local API, run to the end
    seed_analytics(cloud, 60, f"dash-{uuid.uuid4().hex[:6]}")
    status, _, accepted = api_request(cloud, "POST", "/v1/exports", {"chunk_size": 50})
    assert status == 202, accepted

    def finished() -> dict[str, Any]:
        return dict(api_request(cloud, "GET", accepted["status_url"])[2])

    cloud.wait_until(lambda: finished()["status"] == "SUCCEEDED", 60, "the export")
    # Then the dashboard lists it exactly as the job API reports it: progress 100%, status, timestamps
    [listed] = [job for job in overview(cloud)["jobs"] if job["job_id"] == accepted["job_id"]]
    assert listed == finished()
    assert listed["progress"]["percent"] == 100.0


def test_the_dashboard_refuses_what_it_should(cloud: LocalCloud) -> None:
    dlq = quoted(queue_name(cloud, "InventoryDeadLetterQueueUrl"))
    undeliverable = quoted(queue_name(cloud, "OrdersUndeliverableQueueUrl"))
    # Actions need the local key: 401 without it, 403 with another; answers are RFC 9457 problems
    status, headers, problem = call(cloud, "POST", f"/api/queues/{dlq}/redrive", {})
    assert (status, headers["Content-Type"], problem["status"]) == (401, "application/problem+json", 401)
    assert "X-Api-Key" in problem["detail"]
    assert call(cloud, "POST", f"/api/queues/{dlq}/redrive", {}, key="guess")[0] == 403
    # A refused action closes its connection (nothing of it is read as another request); a client
    # that reconnects has the next request answered as its own
    assert cloud.dashboard is not None
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(cloud.dashboard.url.rsplit(":", 1)[1].strip("/"))
    )
    for key, expected in (("guess", 403), (cloud.dashboard_key, 409)):
        connection.request(
            "POST", f"/api/queues/{undeliverable}/redrive", body=b"{}", headers={"X-Api-Key": key}
        )
        answer = connection.getresponse()
        assert (answer.status, json.loads(answer.read())["status"]) == (expected, expected)
    connection.close()
    # A request for another host name (a DNS-rebinding page) is refused
    assert call(cloud, "GET", "/api/overview", host="attacker.example:80")[0] == 421
    # Bad bodies, unknown queues and endpoints, and redrives that cannot work are clear 4xx problems
    assert call(cloud, "POST", f"/api/queues/{dlq}/redrive", raw=b"{nope", key=cloud.dashboard_key)[0] == 400
    assert (
        call(cloud, "POST", f"/api/queues/{dlq}/redrive", {"message_id": 7}, key=cloud.dashboard_key)[0]
        == 400
    )
    assert call(cloud, "GET", "/api/queues/no-such-queue/messages")[0] == 404
    assert call(cloud, "GET", "/api/nothing-here")[0] == 404
    status, _, problem = call(
        cloud, "POST", f"/api/queues/{undeliverable}/redrive", {}, key=cloud.dashboard_key
    )
    assert status == 409 and "no single source queue" in problem["detail"]
    source = quoted(queue_name(cloud, "InventoryQueueUrl"))
    assert call(cloud, "POST", f"/api/queues/{source}/redrive", {}, key=cloud.dashboard_key)[0] == 409
    # The page itself is served with a content security policy that allows no inline script or style
    status, headers, page = call(cloud, "GET", "/")
    assert status == 200 and "<title>localcloud" in page
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert call(cloud, "GET", "/static/../server.py")[0] == 404
