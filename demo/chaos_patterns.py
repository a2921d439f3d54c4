"""The chaos run's other stateful patterns: delayed jobs, webhook deliveries, exports, the order saga and
request-reply, each with its own work, the faults aimed at its workers and an invariant of its own.

The order pipeline's ``FaultInjector`` already throttles every DynamoDB request of every function.
``PatternFaults`` adds the kinds that make a worker's run fail or die in the middle of its work, aimed
at the write that comes after a claim or a step has begun, where work is lost if a retry skips it:

* transient: the write of a chosen unit of work (a job, an order, an export) fails as many times in a
  row as the SDK tries, so the handler's run fails and its message or step is retried;
* crashes: at chosen writes the writing function's busy environments are killed;
* timeouts: at a chosen write the request is held past the function's timeout, then dropped.

Scheduled work (follow-up emails days ahead, webhook retries hours apart) needs the local clock to
move: when nothing can run until a schedule fires, the run moves the clock to the next due time.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from standardwebhooks.webhooks import WebhookVerificationError

from asyncstack.localcloud_extension import webhook_secret
from asyncstack.runtime.aws import SDK_MAX_ATTEMPTS
from asyncstack.runtime.events import new_envelope
from asyncstack.runtime.rpc import RpcClient, RpcTimeoutError
from asyncstack.runtime.workflows import start_once
from demo.faults import WRITES, dynamodb_error
from demo.scenarios import verify_webhook
from localcloud.awslambda.runtime import LocalRuntime
from localcloud.clock import Clock
from localcloud.cloud import LocalCloud
from localcloud.server import HookResponse, free_port
from shared.events import USER_CONVERTED, USER_SIGNED_UP, OrderCreated, OrderLine, UserConverted, UserSignedUp
from shared.exports import ExportJobs, ExportRequest, start_export
from shared.inventory import InventoryRepository
from shared.png import decode, encode, fit_size, gradient
from shared.webhook_delivery import MAX_ATTEMPTS

Say = Callable[[str], None]


@dataclass(frozen=True)
class Invariant:
    name: str
    expected: str
    observed: str
    ok: bool


# -- faults aimed at the patterns' workers ------------------------------------------------------------


@dataclass(frozen=True)
class FaultTarget:
    """The writes of one worker that faults are aimed at: those to ``table`` (DynamoDB; S3 when empty) whose
    request (a body, an S3 path) matches ``match``; ``token`` names the unit of work in it (a job, an order,
    an export)."""

    name: str
    function_arn: str
    table: str
    match: re.Pattern[str]
    token: re.Pattern[str]
    transient_every: int = 0  # every n-th unit of work fails once, as many times as the SDK tries
    kill_at: frozenset[int] = frozenset()  # the matching writes at which the function is killed
    timeout_at: frozenset[int] = frozenset()  # the matching writes held past the function's timeout
    # A queue consumer whose cut-short runs hold claims and in-progress idempotency records until the
    # function's timeout: the run lets them expire before it moves the clock, so a message the move
    # brings back finds its claim free instead of being hidden again.
    holds_leases: bool = False


@dataclass
class PatternFaultLog:
    transient: Counter[str] = field(default_factory=Counter)  # target -> units of work that failed
    kills: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    settled_at: float = float("-inf")  # as FaultLog.settled_at: after it, no cut-short run holds a lease


class PatternFaults:
    """A request hook carrying out the ``FaultTarget``s; thread-safe."""

    def __init__(self, targets: list[FaultTarget], runtime: LocalRuntime) -> None:
        self.targets = targets
        self.runtime = runtime
        self.log = PatternFaultLog()
        self._lock = threading.Lock()
        self._writes: Counter[str] = Counter()
        self._units: dict[tuple[str, str], int] = {}  # (target, token) -> its number among the target's units
        self._unit_counts: Counter[str] = Counter()  # target -> units seen
        self._owed: Counter[tuple[str, str]] = Counter()  # failures still to inject

    def __call__(self, call: tuple[str, str], environ: dict[str, Any], body: bytes) -> HookResponse | None:
        service, operation = call
        if service == "s3":
            if environ.get("REQUEST_METHOD") != "PUT":
                return None
            text = environ.get("PATH_INFO", "")
        elif service == "dynamodb" and operation in WRITES:
            text = body.decode("utf-8", "replace")
        else:
            return None
        for target in self.targets:
            right_place = f'"{target.table}"' in text if target.table else service == "s3"
            if right_place and target.match.search(text):
                return self._disturb(target, text)
        return None

    def _disturb(self, target: FaultTarget, text: str) -> HookResponse | None:
        found = target.token.search(text)
        unit = (target.name, found.group(0) if found else "")
        with self._lock:
            if unit not in self._units:
                self._unit_counts[target.name] += 1
                self._units[unit] = number = self._unit_counts[target.name]
                if target.transient_every and number % target.transient_every == 0:
                    self._owed[unit] = SDK_MAX_ATTEMPTS
            if self._owed[unit] > 0:
                self._owed[unit] -= 1
                if self._owed[unit] == 0:
                    self.log.transient[target.name] += 1
                return self._error(target)
            self._writes[target.name] += 1
            write = self._writes[target.name]
        function = self.runtime.function(target.function_arn)
        if write in target.kill_at:
            function.kill_running()
            self._cut_short(target, function.config.timeout, self.log.kills)
        elif write in target.timeout_at:
            self._cut_short(target, function.config.timeout, self.log.timeouts)
            time.sleep(function.config.timeout + 1)
            return self._error(target)
        return None

    def _cut_short(self, target: FaultTarget, timeout: float, counter: Counter[str]) -> None:
        with self._lock:
            counter[target.name] += 1
            if target.holds_leases:
                self.log.settled_at = max(self.log.settled_at, time.monotonic() + timeout + 1)

    @staticmethod
    def _error(target: FaultTarget) -> HookResponse:
        if not target.table:  # S3: botocore reads a 5xx without an XML body as a retryable error
            return HookResponse(500, {"message": "injected"}, (("Content-Type", "text/plain"),))
        return dynamodb_error(500, "InternalServerError", "Internal server error (injected)")


# -- what each pattern does ---------------------------------------------------------------------------


class Workload(Protocol):
    name: str

    def targets(self) -> list[FaultTarget]: ...
    def start(self) -> None: ...
    def busy(self) -> bool:
        """Work in progress that ends without the clock moving (a running execution, a waiting client)."""

    def done(self) -> bool: ...
    def invariants(self) -> list[Invariant]: ...
    def close(self) -> None: ...


def function_arn(cloud: LocalCloud, fragment: str) -> str:
    """The ARN of the stack's function whose name contains ``fragment`` (its construct id)."""
    found = [
        f["FunctionArn"]
        for page in cloud.client("lambda").get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if fragment in f["FunctionName"]
    ]
    if len(found) != 1:
        raise LookupError(f"expected one function named like {fragment!r}, found {found}")
    return found[0]


def _item(cloud: LocalCloud, table: str, key: str, value: str) -> dict[str, Any]:
    got = cloud.client("dynamodb").get_item(TableName=table, Key={key: {"S": value}}, ConsistentRead=True)
    return dict(got.get("Item") or {})


def _count(pairs: Counter[str]) -> str:
    return ", ".join(f"{count} {name}" for name, count in sorted(pairs.items())) or "none"


class SignupJourneys:
    """Delayed jobs: signups whose follow-ups run later (SQS delays and Scheduler at()), a third of them
    converted, half of those before their signup was handled (the cancel must still stop the jobs)."""

    name = "delayed jobs"

    def __init__(self, cloud: LocalCloud, run: str, users: int) -> None:
        self.cloud = cloud
        self.outputs = cloud.stack_outputs()
        self.users = [f"{run}u-{n}" for n in range(users)]
        self.converted = set(self.users[::3])
        # Signed up a day ago less a minute: the reminder is an SQS delay, due within the run.
        self.soon = {u for u in self.users[1::3]}
        self.run = run

    def targets(self) -> list[FaultTarget]:
        worker = function_arn(self.cloud, "JobsWorker")
        # The follow-up email is the job's effect, written after its claim.
        follow_up = re.compile(
            r"job\.(signup_reminder|trial_expiry_warning)#" + re.escape(self.run) + r"u-\d+"
        )
        return [FaultTarget("jobs worker: follow-up email", worker, self.outputs["OutboxTableName"], follow_up,
                            follow_up, transient_every=3, kill_at=frozenset({2, max(3, len(self.users) // 2)}),
                            timeout_at=frozenset({5}), holds_leases=True)]  # fmt: skip

    def _publish(self, event_type: str, data: Any, occurred_at: datetime) -> None:
        envelope = new_envelope(event_type, data, source="demo.chaos")
        self.cloud.client("sns").publish(
            TopicArn=self.outputs["UsersTopicArn"],
            Message=envelope.model_copy(update={"occurred_at": occurred_at}).model_dump_json(),
            MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
        )

    def start(self) -> None:
        clock = self.cloud.clock.now()
        for n, user in enumerate(self.users):
            converted = UserConverted(user_id=user, plan="pro")
            if user in self.converted and n % 2 == 0:  # the conversion is handled first
                self._publish(USER_CONVERTED, converted, clock)
            occurred = clock - timedelta(hours=24) + timedelta(minutes=1) if user in self.soon else clock
            self._publish(
                USER_SIGNED_UP, UserSignedUp(user_id=user, email=f"{user}@example.com", name=user), occurred
            )
            if user in self.converted and n % 2 == 1:
                self._publish(USER_CONVERTED, converted, clock)

    def _jobs(self) -> dict[tuple[str, str], dict[str, Any]]:
        table = self.outputs["JobsTableName"]
        return {
            (user, kind): _item(self.cloud, table, "job_key", f"{user}.{suffix}")
            for user in self.users
            for kind, suffix in (("job.signup_reminder", "signup-reminder"), ("job.trial_expiry_warning", "trial-expiry"))
        }  # fmt: skip

    def busy(self) -> bool:
        return False

    def done(self) -> bool:
        ended = {"done", "cancelled"}
        return all(job.get("status", {}).get("S") in ended for job in self._jobs().values())

    def invariants(self) -> list[Invariant]:
        jobs = self._jobs()
        outbox = self.outputs["OutboxTableName"]
        sent = {key for key in jobs if _item(self.cloud, outbox, "message_id", f"{key[1]}#{key[0]}")}
        due = {key for key in jobs if key[0] not in self.converted}
        statuses = Counter(job.get("status", {}).get("S", "missing") for job in jobs.values())
        welcomed = sum(bool(_item(self.cloud, outbox, "message_id", f"welcome#{u}")) for u in self.users)
        return [
            Invariant(
                "delayed jobs: every due job ran once, no cancelled job ran",
                f"{len(due)} follow-ups sent, {len(jobs) - len(due)} cancelled, {len(self.users)} welcomed",
                f"{len(sent & due)} sent, {len(sent - due)} sent though cancelled, {len(due - sent)} missing; "
                f"job states {dict(statuses)}; {welcomed} welcomed",
                sent == due
                and statuses == Counter({"done": len(due), "cancelled": len(jobs) - len(due)})
                and welcomed == len(self.users),
            )
        ]

    def close(self) -> None:
        pass


class _Receivers:
    """Webhook receivers on 127.0.0.1, one behaviour per path: ``ok``, ``flaky`` (500 to the first two
    attempts), ``hang`` (the first attempt answered after the worker's read timeout) and ``down``
    (always 500). Records every request: path, webhook-id, and whether its signature verified."""

    HANG_SECONDS = 12.0  # longer than the worker's 10 s read timeout

    def __init__(self, secret: str, clock: Clock) -> None:
        self.clock = clock  # the receivers' clock is the local cloud's, as the worker's is
        self.received: list[tuple[str, str, bool, int]] = []  # path, webhook-id, verified, answered status
        self._lock = threading.Lock()
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verify_webhook(secret, body, headers, now=receivers.clock.now())
                    verified = True
                except WebhookVerificationError:
                    verified = False
                status = receivers.answer(self.path, headers.get("webhook-id", ""), verified)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, name="chaos-receivers", daemon=True).start()

    def url(self, behaviour: str, job_id: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{behaviour}/{job_id}"

    def answer(self, path: str, webhook_id: str, verified: bool) -> int:
        behaviour = path.strip("/").split("/", 1)[0]
        with self._lock:
            earlier = sum(1 for p, *_ in self.received if p == path)
        if behaviour == "hang" and earlier == 0:
            time.sleep(self.HANG_SECONDS)
        status = 500 if behaviour == "down" or (behaviour == "flaky" and earlier < 2) else 204
        if behaviour == "hang" and earlier == 0:
            status = 204  # too late: the worker stopped waiting and records a read timeout
        with self._lock:
            self.received.append((path, webhook_id, verified, status))
        return status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ExportsWithWebhooks:
    """Long-running exports, each with a callback: workers crash mid-chunk and their writes fail; every
    report must have every row once, and every webhook be delivered once or be in the DLQ with its attempts.
    Started once the order pipeline has drained, so the analytics table they export holds still."""

    name = "exports and webhooks"
    BEHAVIOURS = ("ok", "flaky", "hang", "down")

    def __init__(self, cloud: LocalCloud, run: str, chunk_size: int) -> None:
        self.cloud = cloud
        self.outputs = cloud.stack_outputs()
        self.jobs = ExportJobs(self.outputs["ExportJobsTableName"], client=cloud.client("dynamodb"))
        self.job_ids = {behaviour: f"{run}exp-{behaviour}" for behaviour in self.BEHAVIOURS}
        self.chunk_size = chunk_size
        self.run = run
        self.receivers: _Receivers | None = None
        self.expected_rows: Counter[str] = Counter()

    def targets(self) -> list[FaultTarget]:
        job = re.compile(re.escape(self.run) + r"exp-[a-z]+")
        table = self.outputs["ExportJobsTableName"]
        return [
            # A chunk's checkpoint (fenced on the chunk it expects), written after its part went to S3.
            FaultTarget("export worker: checkpoint", function_arn(self.cloud, "ExportWorker"), table,
                        re.compile(r":expected_chunk"), job,
                        transient_every=2, kill_at=frozenset({3, 8})),
            # A delivery attempt's record appended to the job, written after the POST.
            FaultTarget("webhook worker: attempt record", function_arn(self.cloud, "WebhookDelivery"), table,
                        re.compile(r"list_append\(#wh\.#attempts"), job,
                        transient_every=2, kill_at=frozenset({4}), holds_leases=True),
        ]  # fmt: skip

    def start(self) -> None:
        secret = webhook_secret(self.cloud)
        if secret is None:
            raise LookupError("the stack has no webhook signing secret")
        self.receivers = _Receivers(secret, self.cloud.clock)
        self.expected_rows = Counter(self._table_ids())
        for behaviour, job_id in self.job_ids.items():
            # Built as the API would after its checks; plain HTTP to loopback is what the local cloud allows.
            request = ExportRequest.model_construct(
                chunk_size=self.chunk_size, callback_url=self.receivers.url(behaviour, job_id)
            )
            start_export(job_id, request, state_machine_arn=self.outputs["ExportWorkflowArn"], jobs=self.jobs,
                         sfn_client=self.cloud.client("stepfunctions"))  # fmt: skip

    def _table_ids(self) -> list[str]:
        pages = (
            self.cloud.client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=self.outputs["AnalyticsTableName"], ProjectionExpression="event_id")
        )
        return [item["event_id"]["S"] for page in pages for item in page["Items"]]

    def busy(self) -> bool:
        return any(
            (self.jobs.get(j) or {}).get("status") in ("QUEUED", "RUNNING") for j in self.job_ids.values()
        )

    def done(self) -> bool:
        if self.receivers is None:
            return False
        for job_id in self.job_ids.values():
            job = self.jobs.get(job_id) or {}
            webhook = job.get("webhook") or {}
            if job.get("status") not in ("SUCCEEDED", "FAILED") or webhook.get("status") not in (
                "delivered", "callback_failed",
            ):  # fmt: skip
                return False
        return True

    def _report(self, job: dict[str, Any]) -> Counter[str]:
        result = job.get("result") or {}
        if not result:
            return Counter()
        body = self.cloud.client("s3").get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read()
        return Counter(row["event_id"] for row in csv.DictReader(io.StringIO(body.decode())))

    def _dead_letters(self) -> Counter[str]:
        """Webhook DLQ messages of this run's jobs, by job id, each with the attempts its reason names."""
        found: Counter[str] = Counter()
        sqs = self.cloud.client("sqs")
        while messages := sqs.receive_message(
            QueueUrl=self.outputs["WebhookDeadLetterQueueUrl"], MaxNumberOfMessages=10,
            MessageAttributeNames=["All"], VisibilityTimeout=120,
        ).get("Messages", []):  # fmt: skip
            for message in messages:
                attributes = message.get("MessageAttributes", {})
                job_id = attributes.get("job-id", {}).get("StringValue", "")
                reason = attributes.get("error-message", {}).get("StringValue", "")
                if job_id in self.job_ids.values() and f"after {MAX_ATTEMPTS} attempt(s)" in reason:
                    found[job_id] += 1
        return found

    def invariants(self) -> list[Invariant]:
        assert self.receivers is not None
        jobs = {behaviour: self.jobs.get(job_id) or {} for behaviour, job_id in self.job_ids.items()}
        reports = {behaviour: self._report(job) for behaviour, job in jobs.items()}
        whole = [b for b, report in reports.items() if report == self.expected_rows]
        dead = self._dead_letters()
        webhook_problems = []
        for behaviour, job in jobs.items():
            webhook = job.get("webhook") or {}
            answered_2xx = [
                a for a in webhook.get("attempts") or [] if 200 <= (a.get("status_code") or 0) < 300
            ]
            ids = {wid for path, wid, verified, status in self.receivers.received
                   if path.endswith(self.job_ids[behaviour]) and verified and status == 204}  # fmt: skip
            if behaviour == "down":
                ok = (webhook.get("status") == "callback_failed" and len(webhook.get("attempts") or []) == MAX_ATTEMPTS
                      and dead[self.job_ids[behaviour]] == 1 and not ids)  # fmt: skip
            else:
                ok = webhook.get("status") == "delivered" and len(answered_2xx) == 1 and len(ids) == 1
            if not ok:
                webhook_problems.append(
                    f"{behaviour}: {webhook.get('status')}, {len(webhook.get('attempts') or [])} attempts, "
                    f"{len(answered_2xx)} answered 2xx, {len(ids)} verified ids received, "
                    f"{dead[self.job_ids[behaviour]]} in the DLQ"
                )
        statuses = Counter(str(job.get("status")) for job in jobs.values())
        return [
            Invariant(
                "exports: every report has every row once",
                f"{len(jobs)} exports SUCCEEDED, each with the {sum(self.expected_rows.values())} rows once",
                f"{dict(statuses)}; {len(whole)} reports exact",
                statuses == Counter({"SUCCEEDED": len(jobs)}) and len(whole) == len(jobs),
            ),
            Invariant(
                "webhooks: delivered once, or in the DLQ with every attempt",
                f"{len(jobs) - 1} delivered once (after 500s and a hang), 1 in the DLQ after {MAX_ATTEMPTS} attempts",
                "as expected" if not webhook_problems else "; ".join(webhook_problems),
                not webhook_problems,
            ),
        ]

    def close(self) -> None:
        if self.receivers is not None:
            self.receivers.close()


SAGA_QUANTITY = 2
SAGA_STOCK = 10**6


class Sagas:
    """Order sagas: most succeed, some are declined, flaky or undeliverable (compensated), while faults
    hit their charges, reservations, refunds and releases. Each must end completed or fully compensated."""

    name = "order saga"

    def __init__(self, cloud: LocalCloud, run: str, count: int) -> None:
        self.cloud = cloud
        self.outputs = cloud.stack_outputs()
        self.run = run
        self.sku = f"SKU-CHAOS-{run.rstrip('-')}"
        # Not under the pipeline's prefix: its invariants count the reservations that start with it.
        self.orders = {f"saga-{run}{n}": self._variant(n) for n in range(count)}
        self.inventory = InventoryRepository(
            self.outputs["InventoryTableName"], client=cloud.client("dynamodb")
        )
        self.executions: dict[str, str] = {}

    @staticmethod
    def _variant(n: int) -> dict[str, str]:
        # Two of every eight reach the compensations through a rejected confirmation: one whose charge a
        # fault made fail for good still leaves the other to release and refund.
        undeliverable = {"customer_email": "nobody@example.invalid"}
        return [{}, undeliverable, {"payment_method": "pm_card_flaky"}, {}, {"payment_method": "pm_card_declined"},
                {}, undeliverable, {}][n % 8]  # fmt: skip

    def targets(self) -> list[FaultTarget]:
        order = re.compile(r"saga-" + re.escape(self.run) + r"\d+")
        payments, ledger = function_arn(self.cloud, "OrderPayments"), self.outputs["PaymentsTableName"]
        inventory, stock = function_arn(self.cloud, "OrderInventory"), self.outputs["InventoryTableName"]
        return [
            # Compensations first: their writes name the order too, and the first target that matches wins.
            # Every compensation fails once: a small run may compensate only one or two sagas.
            FaultTarget("saga: refund", payments, ledger, re.compile(r"refunded|voided"), order, transient_every=1),
            FaultTarget("saga: release", inventory, stock, re.compile(r'"released"'), order, transient_every=1),
            FaultTarget("saga: charge", payments, ledger, order, order, transient_every=3, kill_at=frozenset({4})),
            FaultTarget("saga: reserve", inventory, stock, re.compile(r"reservation#" + order.pattern), order,
                        transient_every=3, kill_at=frozenset({3}), timeout_at=frozenset({6})),
        ]  # fmt: skip

    def start(self) -> None:
        self.inventory.put_stock(self.sku, SAGA_STOCK)
        sfn = self.cloud.client("stepfunctions")
        for order_id, changes in self.orders.items():
            order = OrderCreated(
                order_id=order_id, customer_id="cus-chaos", customer_email="chaos@example.com",
                lines=[OrderLine(sku=self.sku, quantity=SAGA_QUANTITY, unit_price_cents=1250)],
            ).model_dump(mode="json") | {"payment_method": "pm_card_visa"} | changes  # fmt: skip
            started = start_once(self.outputs["OrderWorkflowArn"], order_id, order, client=sfn)
            self.executions[order_id] = started.execution_arn

    def _described(self) -> dict[str, dict[str, Any]]:
        sfn = self.cloud.client("stepfunctions")
        return {order: sfn.describe_execution(executionArn=arn) for order, arn in self.executions.items()}

    def busy(self) -> bool:
        return any(d["status"] == "RUNNING" for d in self._described().values())

    def done(self) -> bool:
        return bool(self.executions) and not self.busy()

    def invariants(self) -> list[Invariant]:
        problems: list[str] = []
        outcomes: Counter[str] = Counter()
        completed = 0
        for order_id, described in self._described().items():
            payment = _item(self.cloud, self.outputs["PaymentsTableName"], "pk", f"payment#{order_id}")
            reservation = self.inventory.reservation(order_id) or {}
            paid = payment.get("status", {}).get("S")
            held = reservation.get("status", {}).get("S")
            confirmed = bool(_item(self.cloud, self.outputs["OutboxTableName"], "message_id",
                                   f"saga-confirmation#{order_id}"))  # fmt: skip
            status = described["status"]
            outcomes[f"{status} {described.get('error') or ''}".strip()] += 1
            if status == "SUCCEEDED":
                completed += 1
                if (paid, held, confirmed) != ("captured", "reserved", True):
                    problems.append(
                        f"{order_id} completed with payment {paid}, reservation {held}, confirmed {confirmed}"
                    )
            elif described.get("error") == "CompensationFailed" or paid == "captured" or held == "reserved":
                problems.append(
                    f"{order_id} {status} ({described.get('error')}) with payment {paid}, reservation {held}"
                )
        taken = SAGA_STOCK - self.inventory.available(self.sku)
        if taken != completed * SAGA_QUANTITY:
            problems.append(f"{taken} units taken for {completed} completed orders of {SAGA_QUANTITY}")
        return [
            Invariant(
                "order saga: every saga completed or fully compensated",
                f"{len(self.orders)} sagas: completed (charged, reserved, confirmed) or compensated "
                "(nothing charged, nothing reserved)",
                f"{_count(outcomes)}" + (f"; {'; '.join(problems[:3])}" if problems else ""),
                not problems and len(outcomes) > 0,
            )
        ]

    def close(self) -> None:
        pass


class RpcCalls:
    """Request-reply: image.resize calls, one at a time as one client makes them, while the worker is
    killed and its writes fail. Every call is answered with its own thumbnail or times out."""

    name = "request-reply"
    SIZES = ((64, 64), (120, 80), (200, 200), (48, 96))
    CALL_TIMEOUT = 20.0

    def __init__(self, cloud: LocalCloud, run: str, count: int) -> None:
        self.cloud = cloud
        self.outputs = cloud.stack_outputs()
        self.run = run
        self.count = count
        self.source = f"uploads/{run}chaos.png"
        self.results: list[str] = []  # "answered", "timed out" or what went wrong
        self._thread: threading.Thread | None = None

    def targets(self) -> list[FaultTarget]:
        thumbnail = re.compile(r"/thumbnails/uploads/" + re.escape(self.run))
        return [FaultTarget("request-reply: thumbnail", function_arn(self.cloud, "ImageResize"), "", thumbnail,
                            re.compile(r"-\d+x\d+\.png"), transient_every=2, kill_at=frozenset({3}))]  # fmt: skip

    def start(self) -> None:
        self.cloud.client("s3").put_object(
            Bucket=self.outputs["ImagesBucketName"], Key=self.source, Body=encode(gradient(300, 200))
        )
        self._thread = threading.Thread(target=self._call_all, name="chaos-rpc", daemon=True)
        self._thread.start()

    def _call_all(self) -> None:
        client = RpcClient(self.outputs["ImageResizeQueueUrl"], self.outputs["ImageResizeReplyQueueUrl"],
                           sqs=self.cloud.client("sqs"), clock=self.cloud.clock.timestamp)  # fmt: skip
        s3 = self.cloud.client("s3")
        for n in range(self.count):
            width, height = self.SIZES[n % len(self.SIZES)]
            try:
                reply = client.call("image.resize", {"source_key": self.source, "max_width": width + n,
                                                     "max_height": height}, timeout=self.CALL_TIMEOUT)  # fmt: skip
            except RpcTimeoutError:
                self.results.append("timed out")
                continue
            except Exception as error:
                self.results.append(f"{type(error).__name__}: {error}")
                continue
            image = decode(s3.get_object(Bucket=reply["bucket"], Key=reply["key"])["Body"].read())
            expected = fit_size(300, 200, width + n, height)
            ok = (reply["width"], reply["height"]) == expected == (image.width, image.height)
            self.results.append(
                "answered" if ok else f"answered {image.width}x{image.height}, not {expected}"
            )

    def busy(self) -> bool:
        return not self.done()  # calls wait in real time; their crashed requests time out

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def invariants(self) -> list[Invariant]:
        outcomes = Counter(self.results)
        wrong = sum(n for outcome, n in outcomes.items() if outcome not in ("answered", "timed out"))
        return [
            Invariant(
                "request-reply: every call answered with its own result or timed out",
                f"{self.count} calls, each answered correctly or timed out",
                _count(outcomes),
                len(self.results) == self.count and wrong == 0 and outcomes["answered"] > 0,
            )
        ]

    def close(self) -> None:
        pass


def workloads(cloud: LocalCloud, run: str, events: int) -> tuple[list[Workload], list[Workload]]:
    """The patterns at a size that grows with the run: those started with the order events, and those
    started once the order pipeline has drained (exports read what it wrote)."""
    first: list[Workload] = [
        SignupJourneys(cloud, run, users=max(12, events // 50)),
        Sagas(cloud, run, count=max(8, events // 100)),
        RpcCalls(cloud, run, count=max(6, events // 500)),
    ]
    later: list[Workload] = [ExportsWithWebhooks(cloud, run, chunk_size=max(100, events // 20))]
    return first, later
