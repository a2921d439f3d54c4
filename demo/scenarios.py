"""One scenario per async pattern, run by ``make demo`` and by the end-to-end tests (one source of truth).

Each scenario drives the deployed stack on a local cloud from outside, as a client would, and then
checks real outcomes (table rows, S3 objects, dead-letter queues and their reasons, execution
histories). The cloud may be shared (the e2e tests run every file on one), so a scenario counts only
what it caused: its own ids, and counters relative to where they stood when it began.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import math
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from asyncstack.localcloud_extension import webhook_secret
from asyncstack.runtime.events import new_envelope
from asyncstack.runtime.publisher import BatchPublisher, OutgoingMessage
from asyncstack.runtime.rpc import RpcClient, RpcError
from asyncstack.runtime.workflows import start_once
from demo.faults import dynamodb_error
from demo.pipeline import (
    OrderPipeline,
    build_events,
    deployed_consumers,
    print_reconciliation,
    read_dead_letters,
)
from localcloud import logs
from localcloud.clock import Clock
from localcloud.cloud import LocalCloud
from localcloud.server import HookResponse, LocalCloudError, free_port
from shared.events import ORDER_CREATED, USER_SIGNED_UP, OrderCreated, OrderLine, UserSignedUp
from shared.exports import ExportJobs, ExportRequest, new_job_id, start_export
from shared.inventory import InventoryRepository
from shared.orders import event_message, order_created
from shared.png import decode, encode, fit_size, gradient

Say = Callable[[str], None]
# How long a scenario waits for any one outcome before it reports the scenario as failed.
TIMEOUT = 60.0


@dataclass
class ScenarioResult:
    pattern: str
    events: int  # what the scenario sent in
    processed: int  # completed as expected
    in_dlq: int  # ended in a dead-letter queue (with its reason)
    latencies: list[float]  # seconds per event, sent -> effect observed
    ok: bool
    detail: str  # one line: what was checked, or what went wrong

    @property
    def p50(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None


@dataclass(frozen=True)
class Scenario:
    summary: str
    run: Callable[[LocalCloud, Say], ScenarioResult]


def _run_id() -> str:
    """A tag for this run's ids: on a shared cloud a second run must not look like a duplicate."""
    return uuid.uuid4().hex[:8]


def _settle(cloud: LocalCloud) -> None:
    """Wait until nothing is queued or running, so the counters read next are this scenario's alone."""
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle before the scenario")


def _order(order_id: str, sku: str, customer: str = "cus-demo", quantity: int = 1) -> OrderCreated:
    return OrderCreated(
        order_id=order_id, customer_id=customer, customer_email=f"{customer}@example.com",
        lines=[OrderLine(sku=sku, quantity=quantity, unit_price_cents=1250)],
    )  # fmt: skip


def _written_at(
    cloud: LocalCloud, table_output: str, key: str, ids: Iterable[str], attribute: str
) -> dict[str, float]:
    """When a worker wrote each item, by its own timestamp attribute, keyed by id; ids without an item
    are left out. The worker stamps on the local clock; these are in real time, comparable with
    ``time.time()`` here (the clock does not move while a scenario waits for its effects)."""
    offset = cloud.clock.offset.total_seconds()
    dynamodb = cloud.client("dynamodb")
    table = cloud.stack_outputs()[table_output]
    keys = [{key: {"S": i}} for i in ids]
    found: dict[str, float] = {}
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
        while request:
            got = dynamodb.batch_get_item(RequestItems=request)
            for item in got["Responses"].get(table, []):
                found[item[key]["S"]] = datetime.fromisoformat(item[attribute]["S"]).timestamp() - offset
            request = got.get("UnprocessedKeys") or {}
    return found


def _confirmations(cloud: LocalCloud, order_ids: Iterable[str]) -> dict[str, float]:
    """Order confirmation emails in the outbox: order id -> when sent."""
    sent = _written_at(cloud, "OutboxTableName", "message_id",
                       (f"order-confirmation#{o}" for o in order_ids), "sent_at")  # fmt: skip
    return {message_id.split("#", 1)[1]: at for message_id, at in sent.items()}


def _item(cloud: LocalCloud, table_output: str, key: str, value: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        cloud.client("dynamodb")
        .get_item(TableName=cloud.stack_outputs()[table_output], Key={key: {"S": value}}, ConsistentRead=True)
        .get("Item")
    )
    return item


def _dead_letter_reasons(cloud: LocalCloud, queue_url: str, markers: Iterable[str]) -> dict[str, str]:
    """marker -> the ``error-type`` of the dead letter whose body holds it. Reads the whole DLQ once,
    hiding what it read for a minute."""
    wanted = set(markers)
    return {
        marker: reason
        for body, reason in read_dead_letters(cloud.client("sqs"), queue_url, hide_seconds=60)
        for marker in wanted
        if marker in body
    }


def _verdict(problems: list[str], checked: str) -> tuple[bool, str]:
    """(ok, detail): OK only if no check found a problem; the detail is then what was checked."""
    return not problems, problems[0] if problems else checked


def _failed(pattern: str, events: int, detail: str) -> ScenarioResult:
    return ScenarioResult(pattern, events, 0, 0, [], ok=False, detail=detail)


# -- helpers the e2e tests share ----------------------------------------------------------------


def finished_execution(
    cloud: LocalCloud, execution_arn: str, timeout: float = TIMEOUT, poll: float = 0.1
) -> dict[str, Any]:
    """DescribeExecution once the execution has left RUNNING (asked every ``poll`` seconds)."""
    sfn = cloud.client("stepfunctions")
    described: dict[str, Any] = {}

    def finished() -> bool:
        described.update(sfn.describe_execution(executionArn=execution_arn))
        return bool(described["status"] != "RUNNING")

    cloud.wait_until(finished, timeout, f"execution {execution_arn} to finish", poll=poll)
    return described


def history(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [
        event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event
    ]


def count_events(events: list[dict[str, Any]], kind: str) -> int:
    return sum(event["type"] == kind for event in events)


def api_request(
    cloud: LocalCloud, method: str, url: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    """A call to the local API with the local key; an error status is returned, not raised."""
    if cloud.api is None:
        raise LocalCloudError("the local API is off: start the local cloud with an API port")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the local API, http by construction)
        url if url.startswith("http") else cloud.api.url + url, data=data, method=method,
        headers={"x-api-key": cloud.api_key, "content-type": "application/json", **headers},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the local API)
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


WEBHOOK_TOLERANCE = timedelta(minutes=5)  # Standard Webhooks' window for webhook-timestamp


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str], *, now: datetime) -> Any:
    """The payload of a Standard Webhooks delivery, verified by a receiver whose clock reads ``now``:
    the signature by the ``standardwebhooks`` library, the timestamp against the local cloud's clock,
    on which the webhook worker stamps its deliveries (the library's own check reads this machine's
    clock, days behind once the local clock has been advanced). WebhookVerificationError if not."""
    try:
        stamp = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
        msg_id, signatures = headers["webhook-id"], headers["webhook-signature"].split()
    except (KeyError, ValueError) as error:
        raise WebhookVerificationError(f"missing or invalid signature headers: {error}") from None
    if not now - WEBHOOK_TOLERANCE <= stamp <= now + WEBHOOK_TOLERANCE:
        raise WebhookVerificationError(
            f"webhook-timestamp {stamp.isoformat()} is not within 5 minutes of {now}"
        )
    expected = Webhook(secret).sign(msg_id, stamp, body.decode())
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookVerificationError("no matching signature")
    return json.loads(body)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() on arrival
    clock_at: datetime  # the local cloud's clock on arrival: what the receiver checks the timestamp with


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 in a thread: records every delivery, answers 500 to the first
    ``failures`` of them and 204 to the rest. ``clock``: the local cloud's, on which deliveries are stamped."""

    def __init__(self, failures: int = 0, clock: Clock | None = None) -> None:
        self.failures = failures
        self.received: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                now = clock.now() if clock is not None else datetime.now(UTC)
                receiver.received.append(Delivery(headers, body, time.time(), now))
                self.send_response(500 if len(receiver.received) <= receiver.failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/export"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def seed_analytics(cloud: LocalCloud, rows: int, prefix: str) -> None:
    """``rows`` order rows in the analytics table (a report's source), written directly."""
    table = cloud.stack_outputs()["AnalyticsTableName"]

    def row(n: int) -> dict[str, Any]:
        return {
            "event_id": {"S": f"evt-{prefix}-{n:05d}"}, "type": {"S": "order.created"},
            "occurred_at": {"S": "2026-11-29T10:00:00+00:00"}, "order_id": {"S": f"ord-{prefix}-{n:05d}"},
            "customer_id": {"S": "cus-1"}, "total_cents": {"N": str(n * 10)}, "units": {"N": "1"},
        }  # fmt: skip

    for start in range(0, rows, 25):
        batch = [{"PutRequest": {"Item": row(n)}} for n in range(start, min(start + 25, rows))]
        cloud.client("dynamodb").batch_write_item(RequestItems={table: batch})


def analytics_ids(cloud: LocalCloud) -> list[str]:
    pages = (
        cloud.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=cloud.stack_outputs()["AnalyticsTableName"], ProjectionExpression="event_id")
    )
    return [item["event_id"]["S"] for page in pages for item in page["Items"]]


def report_rows(cloud: LocalCloud, result: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of an export's CSV report in S3."""
    body = cloud.client("s3").get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


# -- 1. fire-and-forget ---------------------------------------------------------------------------

API_ORDERS = 5
API_SKU = "SKU-DEMO-API"


def fire_and_forget(cloud: LocalCloud, say: Say) -> ScenarioResult:
    inventory = InventoryRepository(
        cloud.stack_outputs()["InventoryTableName"], client=cloud.client("dynamodb")
    )
    inventory.put_stock(API_SKU, 1000)
    run = _run_id()
    sent: dict[str, float] = {}
    event_ids: dict[str, str] = {}  # order id -> the event id the API published
    answered: list[float] = []
    for n in range(API_ORDERS):
        order = _order(f"ord-api-{run}-{n}", API_SKU).model_dump(mode="json")
        sent[order["order_id"]] = time.time()
        status, _, body = api_request(cloud, "POST", "/v1/orders", order)
        answered.append(time.time() - sent[order["order_id"]])
        if status != 202:
            return _failed("fire-and-forget", API_ORDERS, f"POST /v1/orders answered {status}: {body}")
        event_ids[order["order_id"]] = body["event_id"]
    say(f"  {API_ORDERS} x POST /v1/orders answered 202 in p50 {statistics.median(answered) * 1000:.0f} ms")
    # Observed by polling: a reservation row carries no timestamp of its own.
    took_effect: dict[str, float] = {}

    def orders_took_effect() -> bool:
        for order_id in _confirmations(cloud, [o for o in sent if o not in took_effect]):
            if inventory.reservation(order_id) is not None:
                took_effect[order_id] = time.time()
        return len(took_effect) == len(sent)

    cloud.wait_until(orders_took_effect, TIMEOUT, "the orders' reservations and confirmations", poll=0.05)
    say("  each order reserved its stock and got its confirmation email; waiting for analytics (5 s window)")
    cloud.wait_until(
        lambda: (
            len(_written_at(cloud, "AnalyticsTableName", "event_id", event_ids.values(), "ingested_at"))
            == API_ORDERS
        ),
        TIMEOUT,
        "the orders' analytics rows",
    )
    reserved = [o for o in sent if (inventory.reservation(o) or {})["status"]["S"] == "reserved"]
    problems = []
    if len(reserved) != API_ORDERS:
        problems.append(f"{len(reserved)} of {API_ORDERS} orders reserved stock")
    checked = "202 at once, then every order reserved stock, got its confirmation email and its analytics row"
    latencies = [took_effect[o] - sent[o] for o in sent]
    return ScenarioResult(
        "fire-and-forget", API_ORDERS, len(reserved), 0, latencies, *_verdict(problems, checked)
    )


# -- 2. request-reply -----------------------------------------------------------------------------

IMAGE_SIZE = (320, 200)
THUMBNAILS = [(64, 64), (128, 128), (32, 32), (100, 100), (16, 16)]


def request_reply(cloud: LocalCloud, say: Say) -> ScenarioResult:
    outputs = cloud.stack_outputs()
    s3 = cloud.client("s3")
    source = f"uploads/demo-{_run_id()}.png"
    s3.put_object(Bucket=outputs["ImagesBucketName"], Key=source, Body=encode(gradient(*IMAGE_SIZE)))
    client = RpcClient(
        outputs["ImageResizeQueueUrl"], outputs["ImageResizeReplyQueueUrl"], sqs=cloud.client("sqs"),
        clock=cloud.clock.timestamp,  # the deadline the worker checks is on its clock, the local one
    )  # fmt: skip
    latencies: list[float] = []
    problems: list[str] = []
    for width, height in THUMBNAILS:
        started = time.monotonic()
        try:
            reply = client.call(
                "image.resize", {"source_key": source, "max_width": width, "max_height": height}, timeout=30
            )
        except RpcError as error:  # RpcTimeoutError or the worker's error answer
            problems.append(str(error))
            continue
        latencies.append(time.monotonic() - started)
        image = decode(s3.get_object(Bucket=reply["bucket"], Key=reply["key"])["Body"].read())
        expected = fit_size(*IMAGE_SIZE, width, height)
        say(f"  image.resize to fit {width}x{height}: {reply['key']} ({image.width}x{image.height}) "
            f"in {latencies[-1]:.2f} s")  # fmt: skip
        if (reply["width"], reply["height"]) != expected or (image.width, image.height) != expected:
            problems.append(
                f"asked to fit {width}x{height}, got {image.width}x{image.height}, expected {expected}"
            )
    checked = "every call answered on the reply queue under its correlation id, the thumbnail in S3 as asked"
    answered = len(THUMBNAILS) - len(problems)
    return ScenarioResult(
        "request-reply", len(THUMBNAILS), answered, 0, latencies, *_verdict(problems, checked)
    )


# -- 3. pub-sub -----------------------------------------------------------------------------------


def pub_sub(cloud: LocalCloud, say: Say, *, events: int = 200, timeout: float = 240.0) -> ScenarioResult:
    _settle(cloud)
    demo = OrderPipeline(cloud, say)
    demo.seed_stock()
    prefix = f"demo-{_run_id()}-"
    published = build_events(events, duplicate_share=0.04, poison_share=0.02, prefix=prefix)
    sent_at: dict[str, float] = {}
    started = time.monotonic()
    demo.publish(published, sent_at=sent_at)
    say(f"  published {len(published.all)} messages in {time.monotonic() - started:.1f} s "
        f"(PublishBatch, 10 a call) to {', '.join(c.name for c in demo.consumers)}")  # fmt: skip
    demo.wait_until_drained(timeout)
    reports = demo.reconcile(published, marker=prefix)
    print_reconciliation(published, reports, lambda line: say(f"  {line}" if line else line))
    # Per message: one that took effect (or was suppressed as a duplicate) in every consumer it was routed
    # to, and poison once however many DLQs hold it.
    processed = min(r.effects + r.duplicates_suppressed for r in reports)
    in_dlq = sum(
        min(r.dead_letters[kind] for r in reports if r.expected_dead_letters[kind])
        for kind in published.poison
    )
    # Sent -> the later of its confirmation email and its analytics row (reservations carry no time).
    bodies = {json.loads(m.body)["event_id"]: m.body for m in published.unique}
    orders = {event_id: json.loads(body)["data"]["order_id"] for event_id, body in bodies.items()}
    confirmed = _confirmations(cloud, orders.values())
    tracked = _written_at(cloud, "AnalyticsTableName", "event_id", bodies, "ingested_at")
    latencies = [
        max(confirmed[orders[e]], tracked[e]) - sent_at[bodies[e]]
        for e in bodies
        if orders[e] in confirmed and e in tracked
    ]
    problems = [
        f"{r.name}: effects {r.effects} of {r.expected_effects}, DLQ {dict(r.dead_letters)}"
        for r in reports
        if not r.ok
    ]
    checked = (
        f"{len(published.unique)} events took effect once per consumer, {len(published.duplicates)} duplicates "
        "suppressed, the poison in each DLQ with its reason"
    )
    return ScenarioResult(
        "pub-sub", len(published.all), processed, in_dlq, latencies, *_verdict(problems, checked)
    )


# -- 4. work-queue --------------------------------------------------------------------------------

WORK_ITEMS = 60
WORK_SKU = "SKU-DEMO-WORK"


@dataclass
class _OutboxOutage:
    """Fault injection, a request hook: DynamoDB answers 500 to the outbox write of ``message_id`` until the
    worker gives that record back to ``queue`` for a retry (its ChangeMessageVisibility), as when a
    dependency is briefly down."""

    message_id: str
    queue: str
    failed_writes: int = 0
    over: bool = False

    def __call__(self, call: tuple[str, str], environ: dict[str, Any], body: bytes) -> HookResponse | None:
        if call == ("sqs", "ChangeMessageVisibility") and self.failed_writes and self.queue.encode() in body:
            self.over = True
        elif not self.over and call == ("dynamodb", "PutItem") and self.message_id.encode() in body:
            self.failed_writes += 1
            return dynamodb_error(500, "InternalServerError", "injected: the outbox is down")
        return None


def work_queue(cloud: LocalCloud, say: Say) -> ScenarioResult:
    _settle(cloud)
    [email] = [c for c in deployed_consumers(cloud) if c.name == "email"]
    run = _run_id()
    orders = [_order(f"ord-work-{run}-{n:03d}", WORK_SKU) for n in range(WORK_ITEMS - 1)]
    messages = [
        event_message(order_created(o, event_id=f"evt-work-{run}-{n:03d}")) for n, o in enumerate(orders)
    ]
    poison_id = f"evt-work-{run}-poison"
    valid = json.loads(messages[0].body)
    poison = {**valid, "event_id": poison_id, "data": {**valid["data"], "order_id": poison_id, "lines": []}}
    messages.insert(WORK_ITEMS // 2, OutgoingMessage(json.dumps(poison), {"type": ORDER_CREATED}))
    flaky = orders[7].order_id
    pollers = cloud.mappings.pollers[email.mapping_uuid][1]  # one per concurrent consumer
    batches_before = [p.stats.batches for p in pollers]
    before = cloud.mappings.stats()[email.mapping_uuid]
    sent: dict[str, float] = {}
    outage = _OutboxOutage(f"order-confirmation#{flaky}", queue=email.queue_url.rsplit("/", 1)[-1])
    with cloud.request_hook(outage):
        with BatchPublisher.for_queue(
            email.queue_url, client=cloud.client("sqs"), max_interval_seconds=None
        ) as queue:
            for message in messages:
                sent[json.loads(message.body)["data"]["order_id"]] = time.time()
                queue.add(message)
        say(f"  sent {WORK_ITEMS} orders to confirm straight to the email queue (SendMessageBatch), one of them "
            f"poison; the outbox is down for {flaky} until the worker gives it back")  # fmt: skip
        cloud.wait_until(
            lambda: (
                cloud.mappings.stats()[email.mapping_uuid].records_succeeded - before.records_succeeded
                >= WORK_ITEMS
            ),
            TIMEOUT,
            "every message of the email queue to be handled",
        )
    stats = cloud.mappings.stats()[email.mapping_uuid]
    deleted = stats.records_succeeded - before.records_succeeded
    retried = stats.records_failed - before.records_failed
    took = [p.stats.batches - b for p, b in zip(pollers, batches_before, strict=True) if p.stats.batches > b]
    confirmed = _confirmations(cloud, (o.order_id for o in orders))
    reasons = _dead_letter_reasons(cloud, email.dead_letter_url, [poison_id])
    say(f"  {len(took)} competing consumers took {' + '.join(map(str, took))} batches; {retried} record failed "
        f"in its batch (partial batch response) and came back alone; in the DLQ: {reasons}")  # fmt: skip
    problems = []
    if len(confirmed) != len(orders):
        problems.append(f"{len(confirmed)} of {len(orders)} emails sent")
    if reasons != {poison_id: "SchemaInvalid"}:
        problems.append(f"the poison message is not in the DLQ as SchemaInvalid: {reasons}")
    if deleted != WORK_ITEMS or retried != 1 or not outage.over:
        problems.append(f"{deleted} records done and {retried} retried, for {WORK_ITEMS} sent and 1 failure")
    if len(took) < 2:
        problems.append("a single consumer took every batch")
    checked = (
        f"{len(orders)} emails sent once by {len(took)} competing consumers; the failed record alone was "
        "retried; the poison message in the DLQ as SchemaInvalid"
    )
    latencies = [confirmed[o] - sent[o] for o in confirmed]
    return ScenarioResult(
        "work-queue", WORK_ITEMS, len(confirmed), len(reasons), latencies, *_verdict(problems, checked)
    )


# -- 5. delayed-jobs ------------------------------------------------------------------------------

FOLLOW_UPS = {"job.signup_reminder": "signup-reminder", "job.trial_expiry_warning": "trial-expiry"}
SQS_DELAY = timedelta(seconds=5)


def sign_up(cloud: LocalCloud, user_id: str, occurred_at: datetime) -> None:
    user = UserSignedUp(user_id=user_id, email=f"{user_id}@example.com", name=f"Demo {user_id}")
    envelope = new_envelope(USER_SIGNED_UP, user, source="demo.run")
    cloud.client("sns").publish(
        TopicArn=cloud.stack_outputs()["UsersTopicArn"],
        Message=envelope.model_copy(update={"occurred_at": occurred_at}).model_dump_json(),
        MessageAttributes={"type": {"DataType": "String", "StringValue": USER_SIGNED_UP}},
    )


def delayed_jobs(cloud: LocalCloud, say: Say) -> ScenarioResult:
    run = _run_id()
    # The scheduler, SQS and the functions all read the local clock. One user signs up "now": both
    # follow-ups become Scheduler at() schedules. The other signed up a day minus SQS_DELAY ago: the
    # reminder is due in seconds, an SQS message with DelaySeconds.
    later, soon = f"u-demo-{run}-a", f"u-demo-{run}-b"
    now = cloud.clock.now().replace(microsecond=0)
    sign_up(cloud, later, now)
    sign_up(cloud, soon, now - timedelta(hours=24) + SQS_DELAY)
    jobs = {(user, kind): f"{user}.{suffix}" for user in (later, soon) for kind, suffix in FOLLOW_UPS.items()}
    reminder = jobs[soon, "job.signup_reminder"]

    def job(key: str) -> dict[str, Any]:
        return _item(cloud, "JobsTableName", "job_key", key) or {}

    def email(user: str, kind: str) -> dict[str, Any] | None:
        return _item(cloud, "OutboxTableName", "message_id", f"{kind}#{user}")

    cloud.wait_until(lambda: all(email(u, "welcome") for u in (later, soon)), TIMEOUT, "the welcome emails")
    cloud.wait_until(lambda: all(job(key) for key in jobs.values()), TIMEOUT, "the follow-up jobs")
    via = {key: job(key)["via"]["S"] for key in jobs.values()}
    delays = sum(v == "sqs" for v in via.values())
    say(
        f"  2 signups: welcome emails sent at once; 4 follow-ups: {delays} SQS delay, {len(via) - delays} Scheduler at()"
    )
    cloud.wait_until(lambda: job(reminder)["status"]["S"] == "done", TIMEOUT, "the reminder due in seconds")
    early = [kind for kind in FOLLOW_UPS if email(later, kind)]
    moved_to = cloud.clock.advance(timedelta(days=3, minutes=1)).timestamp()
    cloud.scheduler.fire_due()
    say("  the local clock moved 3 days ahead; the scheduler fired what fell due")
    cloud.wait_until(
        lambda: all(job(key)["status"]["S"] == "done" for key in jobs.values()),
        TIMEOUT,
        "every follow-up job",
    )
    sent = {
        key: datetime.fromisoformat(item["sent_at"]["S"]).timestamp()
        for (user, kind), key in jobs.items()
        if (item := email(user, kind))
    }
    # Due, on the local clock (which the worker's sent_at is on too): the SQS job at its due_at, the
    # scheduled ones when the clock was moved past them.
    due = dict.fromkeys(jobs.values(), moved_to)
    due[reminder] = datetime.fromisoformat(job(reminder)["due_at"]["S"]).timestamp()
    problems = []
    if early:
        problems.append(f"{early} sent before the clock reached them")
    if via != {key: "sqs" if key == reminder else "scheduler" for key in jobs.values()}:
        problems.append(f"the jobs went via {via}")
    if sent.get(reminder, 0) < due[reminder]:
        problems.append("the reminder in an SQS delay ran before it was due")
    if len(sent) != len(jobs):
        problems.append(f"{len(sent)} of {len(jobs)} follow-up emails sent")
    latencies = [at - due[key] for key, at in sent.items()]
    checked = "2 welcome emails at once; 4 follow-ups (1 SQS delay, 3 Scheduler at()) ran once each, when due"
    return ScenarioResult("delayed-jobs", len(jobs), len(sent), 0, latencies, *_verdict(problems, checked))


# -- 6. batch-ingestion ---------------------------------------------------------------------------

INGESTED = 500
ROWS_PER_BATCH_WRITE = 25


def batch_ingestion(cloud: LocalCloud, say: Say) -> ScenarioResult:
    _settle(cloud)
    [analytics] = [c for c in deployed_consumers(cloud) if c.name == "analytics"]
    run = _run_id()
    orders = {
        f"evt-bulk-{run}-{n:04d}": _order(f"ord-bulk-{run}-{n:04d}", "SKU-DEMO-BULK") for n in range(INGESTED)
    }
    messages = {
        event_id: event_message(order_created(o, event_id=event_id)) for event_id, o in orders.items()
    }
    before = cloud.mappings.stats()[analytics.mapping_uuid]
    writes_before = cloud.app.api_calls.snapshot().get("dynamodb", {}).get("BatchWriteItem", 0)
    sent: dict[str, float] = {}
    with BatchPublisher.for_queue(
        analytics.queue_url, client=cloud.client("sqs"), max_interval_seconds=None
    ) as queue:
        for event_id, message in messages.items():
            sent[event_id] = time.time()
            queue.add(message)
    say(
        f"  sent {INGESTED} events to the analytics queue in {math.ceil(INGESTED / 10)} SendMessageBatch calls"
    )

    def handled() -> int:
        return cloud.mappings.stats()[analytics.mapping_uuid].records_succeeded - before.records_succeeded

    cloud.wait_until(lambda: handled() >= INGESTED, TIMEOUT, "every analytics event to be handled")
    stats = cloud.mappings.stats()[analytics.mapping_uuid]
    batches, failed = stats.batches - before.batches, stats.records_failed - before.records_failed
    writes = cloud.app.api_calls.snapshot()["dynamodb"]["BatchWriteItem"] - writes_before
    rows = _written_at(cloud, "AnalyticsTableName", "event_id", messages, "ingested_at")
    say(f"  {batches} invocations (up to 100 records each, 5 s batching window) wrote {len(rows)} rows "
        f"in {writes} BatchWriteItem calls")  # fmt: skip
    problems = []
    if len(rows) != INGESTED:
        problems.append(f"{len(rows)} of {INGESTED} rows written")
    if handled() != INGESTED or failed:
        problems.append(f"{handled()} records handled and {failed} failed for {INGESTED} sent")
    # Each invocation writes its rows 25 a call: anything more is not a bulk write.
    if writes > math.ceil(INGESTED / ROWS_PER_BATCH_WRITE) + batches:
        problems.append(f"{writes} BatchWriteItem calls for {INGESTED} rows in {batches} batches")
    checked = (
        f"every event handled once in {batches} batches and its row written once, {ROWS_PER_BATCH_WRITE} rows "
        "per BatchWriteItem"
    )
    latencies = [rows[e] - sent[e] for e in rows]
    return ScenarioResult("batch-ingestion", INGESTED, len(rows), 0, latencies, *_verdict(problems, checked))


# -- 7. long-running-export -----------------------------------------------------------------------

EXPORT_MIN_ROWS = 600
EXPORT_CHUNK = 25


class LiveLine:
    """A progress display: one line redrawn with ``\\r`` when the demo prints to a terminal, otherwise
    a line per change through ``say``."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.redraw = say in (print, logs.say) and sys.stdout.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        if self.redraw:
            sys.stdout.write(f"\r{text:<{len(self.last)}}")
            sys.stdout.flush()
        else:
            self.say(text)
        self.last = text

    def close(self) -> None:
        if self.redraw and self.last:
            sys.stdout.write("\n")


def _progress_bar(progress: dict[str, Any], width: int = 30) -> str:
    percent = float(progress.get("percent") or 0)
    filled = round(width * percent / 100)
    eta = progress.get("eta_seconds")
    return (
        f"  [{'#' * filled}{'.' * (width - filled)}] {percent:5.1f} %  "
        f"{progress.get('current', 0)}/{progress.get('total') or '?'} rows"
        + (f"  ETA {float(eta):.1f} s" if eta is not None and percent < 100 else "")
    )


def long_running_export(cloud: LocalCloud, say: Say) -> ScenarioResult:
    outputs = cloud.stack_outputs()
    present = len(analytics_ids(cloud))
    if present < EXPORT_MIN_ROWS:  # run alone, the table may be (nearly) empty
        seed_analytics(cloud, EXPORT_MIN_ROWS - present, prefix=f"export-{_run_id()}")
    expected = sorted(analytics_ids(cloud))
    jobs = ExportJobs(outputs["ExportJobsTableName"], client=cloud.client("dynamodb"))
    job_id = new_job_id()
    started = time.time()
    start_export(job_id, ExportRequest(chunk_size=EXPORT_CHUNK), state_machine_arn=outputs["ExportWorkflowArn"],
                 jobs=jobs, sfn_client=cloud.client("stepfunctions"))  # fmt: skip
    say(
        f"  export {job_id}: {len(expected)} rows, {EXPORT_CHUNK} a chunk; progress read from the jobs table:"
    )
    percents: list[float] = []
    bar = LiveLine(say)

    def finished() -> bool:
        job = jobs.get(job_id) or {}
        if job.get("progress"):
            percents.append(float(job["progress"]["percent"]))
            bar.show(_progress_bar(job["progress"]))
        return job.get("status") in ("SUCCEEDED", "FAILED")

    try:
        cloud.wait_until(finished, TIMEOUT, f"export {job_id} to finish", poll=0.05)
    finally:
        bar.close()
    elapsed = time.time() - started
    job = jobs.get(job_id) or {}
    execution = finished_execution(
        cloud, outputs["ExportWorkflowArn"].replace(":stateMachine:", ":execution:") + f":{job_id}"
    )
    if job.get("status") != "SUCCEEDED":
        return _failed(
            "long-running-export", len(expected), f"{job_id} ended {job.get('status')}: {job.get('error')}"
        )
    exported = sorted(row["event_id"] for row in report_rows(cloud, job["result"]))
    parts = cloud.client("s3").list_objects_v2(
        Bucket=job["result"]["bucket"], Prefix=f"exports/{job_id}/parts/"
    )
    progress = job["progress"]
    problems = []
    if percents != sorted(percents) or percents[-1:] != [100]:
        problems.append(f"the progress went {percents}")
    if not progress["current"] == progress["total"] == len(expected):
        problems.append(f"the progress ended at {progress['current']} of {progress['total']} rows")
    if exported != expected:
        problems.append(
            f"the report holds {len(exported)} rows ({len(set(exported))} distinct) for {len(expected)}"
        )
    if parts.get("KeyCount"):
        problems.append(f"{parts['KeyCount']} chunk parts left behind")
    if execution["status"] != "SUCCEEDED":
        problems.append(f"the execution ended {execution['status']}")
    checked = f"SUCCEEDED, progress rising to 100 %, every row once in the report ({job['result']['key']})"
    return ScenarioResult(
        "long-running-export", len(expected), len(exported), 0, [elapsed], *_verdict(problems, checked)
    )


# -- 8. polling-webhook ---------------------------------------------------------------------------


def polling_webhook(cloud: LocalCloud, say: Say) -> ScenarioResult:
    secret = webhook_secret(cloud)
    if not secret:
        return _failed("polling-webhook", 1, "the stack has no webhook signing secret")
    with WebhookReceiver(clock=cloud.clock) as receiver:
        started = time.time()
        status, _, accepted = api_request(
            cloud, "POST", "/v1/exports", {"chunk_size": 100, "callback_url": receiver.url}
        )
        if status != 202:
            return _failed("polling-webhook", 1, f"POST /v1/exports answered {status}: {accepted}")
        say(f"  POST /v1/exports (callback {receiver.url}) -> 202 {accepted['job_id']}")

        def job() -> dict[str, Any]:
            return dict(api_request(cloud, "GET", accepted["status_url"])[2])

        seen: list[str] = []

        def finished() -> bool:
            seen.append(job()["status"])
            return seen[-1] in ("SUCCEEDED", "FAILED")

        cloud.wait_until(finished, TIMEOUT, "the export to finish", poll=0.2)
        say(f"  polled GET {accepted['status_url']} {len(seen)} times: {' -> '.join(dict.fromkeys(seen))}")
        cloud.wait_until(
            lambda: (job().get("webhook") or {}).get("status") == "delivered",
            TIMEOUT,
            "the webhook's delivery",
        )
        final = job()
        deliveries = list(receiver.received)
    first = deliveries[0]
    try:
        event = verify_webhook(secret, first.body, first.headers, now=first.clock_at)
    except WebhookVerificationError as error:
        return _failed("polling-webhook", 1, f"the webhook's signature does not verify: {error}")
    say(f"  webhook {event['type']} received, signature verified ({deliveries[0].headers['webhook-id']})")
    problems = []
    if final["status"] != "SUCCEEDED":
        problems.append(f"the job ended {final['status']}")
    if (event["type"], event["data"].get("job_id")) != ("export.completed", accepted["job_id"]):
        problems.append(f"the webhook says {event['type']} for {event['data'].get('job_id')}")
    if event["data"].get("result") != final.get("result"):
        problems.append("the webhook's result differs from the polled one")
    if len(deliveries) != 1:
        problems.append(f"{len(deliveries)} deliveries for one job")
    checked = "202 at once, polled to SUCCEEDED, the export.completed webhook's signature verified"
    latency = deliveries[0].at - started  # the POST -> the webhook at the receiver
    return ScenarioResult("polling-webhook", 1, int(not problems), 0, [latency], *_verdict(problems, checked))


# -- 9. saga --------------------------------------------------------------------------------------

SAGA_SKU = "SKU-DEMO-SAGA"
SAGA_STEPS = ["AcceptOrder", "ChargePayment", "ReserveInventory", "SendConfirmation"]


@dataclass(frozen=True)
class SagaOutcome:
    status: str
    error: str | None
    states: list[str]
    payment: str | None  # the payment's status afterwards
    reserved: int  # units the order holds once the execution ended
    confirmed: bool


# name -> (what the order changes, the outcome expected)
SAGA_RUNS: dict[str, tuple[dict[str, Any], SagaOutcome]] = {
    "paid, reserved, confirmed": (
        {},
        SagaOutcome("SUCCEEDED", None, [*SAGA_STEPS, "OrderConfirmed"], "captured", reserved=2, confirmed=True),
    ),
    # The last step fails: the two steps before it are undone, newest first.
    "confirmation rejected": (
        {"customer_email": "nobody@shop.invalid"},
        SagaOutcome(
            "FAILED", "RecipientRejectedError",
            [*SAGA_STEPS, "ReleaseInventory", "RefundPayment", "NotifyFailure", "OrderFailed"],
            "refunded", reserved=0, confirmed=False,
        ),
    ),
}  # fmt: skip


def saga(cloud: LocalCloud, say: Say) -> ScenarioResult:
    outputs = cloud.stack_outputs()
    inventory = InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb"))
    inventory.put_stock(SAGA_SKU, 100)
    run = _run_id()
    latencies: list[float] = []
    problems: list[str] = []
    for n, (name, (changes, expected)) in enumerate(SAGA_RUNS.items()):
        order_id = f"ord-saga-{run}-{n}"
        order = _order(order_id, SAGA_SKU, quantity=2).model_dump(mode="json") | {
            "payment_method": "pm_card_visa"
        }
        stock = inventory.available(SAGA_SKU)
        started = start_once(
            outputs["OrderWorkflowArn"], order_id, order | changes, client=cloud.client("stepfunctions")
        )
        execution = finished_execution(cloud, started.execution_arn)
        latencies.append((execution["stopDate"] - execution["startDate"]).total_seconds())
        payment = _item(cloud, "PaymentsTableName", "pk", f"payment#{order_id}") or {}
        got = SagaOutcome(
            status=execution["status"],
            error=execution.get("error"),
            states=states_entered(history(cloud, started.execution_arn)),
            payment=payment.get("status", {}).get("S"),
            reserved=stock - inventory.available(SAGA_SKU),
            confirmed=_item(cloud, "OutboxTableName", "message_id", f"saga-confirmation#{order_id}")
            is not None,
        )
        say(f"  {name}: {got.status}{f' ({got.error})' if got.error else ''}, payment {got.payment}, "
            f"via {' -> '.join(got.states)}")  # fmt: skip
        if got != expected:
            problems.append(f"{name}: expected {expected}, got {got}")
    checked = (
        "one order charged, reserved, confirmed; one rejected at confirmation: stock released, then the charge "
        "refunded"
    )
    return ScenarioResult(
        "saga", len(SAGA_RUNS), len(SAGA_RUNS) - len(problems), 0, latencies, *_verdict(problems, checked)
    )


SCENARIOS: dict[str, Scenario] = {
    "fire-and-forget": Scenario(
        "POST /orders answers 202 at once; the order then takes effect in the pipeline", fire_and_forget
    ),
    "request-reply": Scenario(
        "image.resize called over SQS, each reply correlated to its call", request_reply
    ),
    "pub-sub": Scenario(
        "order events fanned out to inventory, email and analytics, reconciled exactly", pub_sub
    ),
    "work-queue": Scenario(
        "one queue, competing consumers, a partial batch failure, poison to the DLQ", work_queue
    ),
    "delayed-jobs": Scenario(
        "follow-up emails run when due: SQS delays and Scheduler at() schedules", delayed_jobs
    ),
    "batch-ingestion": Scenario(
        "analytics events consumed 100 at a time and written in bulk", batch_ingestion
    ),
    "long-running-export": Scenario(
        "a chunked report export with live progress, the report in S3", long_running_export
    ),
    "polling-webhook": Scenario(
        "the job API: 202, poll the status, receive the signed webhook", polling_webhook
    ),
    "saga": Scenario("the order saga, once succeeding and once compensating newest first", saga),
}
