"""``make demo``: 1,000 order events through the synthesized stack on moto, then a reconciliation.

The stack is synthesized, its template provisioned into an embedded moto server, and every
function runs from its deployed asset in its own worker process behind SQS pollers with
Lambda's semantics. Some events are published twice and some are poison; afterwards every
number is checked against what was published: each unique event took effect exactly once per
consumer, each duplicate was suppressed, each poison record sits in its consumer's DLQ with
its reason, and nothing is left in flight. Exit status 0 only if all of that holds.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.runtime import LocalRuntime
from localcloud.server import LocalCloudError, free_port, local_client, moto_server
from localcloud.template import Deployment, provision
from shared.events import ORDER_CREATED, OrderCreated, OrderLine
from shared.inventory import InventoryRepository
from shared.orders import event_message, order_created
from shared.publisher import BatchPublisher, OutgoingMessage

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build" / "localcloud"
SKUS = ["SKU-RED-MUG", "SKU-TEA-100G", "SKU-NOTEBOOK", "SKU-PEN-BLUE", "SKU-TOTE-BAG"]
STOCK_PER_SKU = 700
POISON_KINDS = ("MalformedJson", "SchemaInvalid", "UnknownEventType")
# consumer (its POWERTOOLS_SERVICE_NAME) -> the stack output naming the table its effects land in
EFFECT_TABLES = {
    "inventory": "InventoryTableName",
    "email": "OutboxTableName",
    "analytics": "AnalyticsTableName",
}


@dataclass
class Published:
    """What went into the topic: message attributes per message, by kind."""

    unique: list[OutgoingMessage] = field(default_factory=list)
    duplicates: list[OutgoingMessage] = field(default_factory=list)
    poison: dict[str, list[OutgoingMessage]] = field(default_factory=dict)

    @property
    def all(self) -> list[OutgoingMessage]:
        return self.unique + self.duplicates + [m for group in self.poison.values() for m in group]


def build_events(total: int, duplicate_share: float, poison_share: float, seed: int = 7) -> Published:
    rng = random.Random(seed)
    poison_count = max(len(POISON_KINDS), round(total * poison_share))
    duplicate_count = round(total * duplicate_share)
    unique_count = total - poison_count - duplicate_count
    published = Published()
    for i in range(unique_count):
        lines = [
            OrderLine(sku=sku, quantity=rng.randint(1, 3), unit_price_cents=rng.randint(199, 4999))
            for sku in rng.sample(SKUS, rng.randint(1, 3))
        ]
        order = OrderCreated(
            order_id=f"ord-{i:05d}", customer_id=f"cus-{rng.randint(1, 200):04d}",
            customer_email=f"customer{i}@example.com", lines=lines,
        )  # fmt: skip
        published.unique.append(event_message(order_created(order, event_id=f"evt-{i:05d}")))
    published.duplicates = [rng.choice(published.unique) for _ in range(duplicate_count)]
    valid = json.loads(published.unique[0].body)
    for i in range(poison_count):
        kind = POISON_KINDS[i % len(POISON_KINDS)]
        if kind == "MalformedJson":
            message = OutgoingMessage(body=f'{{"event_id": "evt-broken-{i}", "type": "order.created", ',
                                      attributes={"type": ORDER_CREATED})  # fmt: skip
        elif kind == "SchemaInvalid":
            body = {**valid, "event_id": f"evt-invalid-{i}", "data": {**valid["data"], "lines": []}}
            message = OutgoingMessage(body=json.dumps(body), attributes={"type": ORDER_CREATED})
        else:
            body = {**valid, "event_id": f"evt-unknown-{i}", "type": "order.teleported"}
            message = OutgoingMessage(body=json.dumps(body), attributes={"type": "order.teleported"})
        published.poison.setdefault(kind, []).append(message)
    return published


def matches(policy: Mapping[str, Any] | None, attributes: Mapping[str, str]) -> bool:
    """SNS attribute filter policies, for the operators the stack uses (exact and prefix)."""
    for key, allowed in (policy or {}).items():
        value = attributes.get(key)
        if value is None or not any(
            value == rule if isinstance(rule, str) else value.startswith(rule.get("prefix", "\0"))
            for rule in allowed
        ):
            return False
    return True


@dataclass
class ConsumerReport:
    name: str
    routed: int
    delivered_ok: int
    effects: int
    expected_effects: int
    expected_duplicates: int
    dead_letters: Counter[str]
    expected_dead_letters: Counter[str]

    @property
    def duplicates_suppressed(self) -> int:
        return self.delivered_ok - self.effects - sum(self.dead_letters.values())

    @property
    def ok(self) -> bool:
        return (
            self.delivered_ok == self.routed
            and self.effects == self.expected_effects
            and self.duplicates_suppressed == self.expected_duplicates
            and self.dead_letters == self.expected_dead_letters
        )


class Demo:
    def __init__(self, endpoint: str, deployment: Deployment, say: Callable[[str], None]) -> None:
        self.endpoint = endpoint
        self.deployment = deployment
        self.say = say
        self.sqs = local_client("sqs", endpoint)
        self.sns = local_client("sns", endpoint)
        self.dynamodb = local_client("dynamodb", endpoint)

    @property
    def inventory(self) -> InventoryRepository:
        return InventoryRepository(self.deployment.outputs["InventoryTableName"], client=self.dynamodb)

    def seed_stock(self) -> None:
        for sku in SKUS:
            self.inventory.put_stock(sku, STOCK_PER_SKU)

    def publish(self, published: Published) -> None:
        publisher = BatchPublisher.for_topic(self.deployment.outputs["OrdersTopicArn"], client=self.sns,
                                             max_interval_seconds=None)  # fmt: skip
        with publisher:
            for message in published.all:
                publisher.add(message)
        failed = [r for r in publisher.results if not r.ok]
        if failed:
            raise LocalCloudError(f"{len(failed)} messages could not be published: {failed[0].error_message}")

    def backlog(self) -> int:
        total = 0
        for url in {mapping.queue_url for mapping in self.deployment.mappings}:
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            total += sum(int(attributes[k]) for k in ("ApproximateNumberOfMessages",
                         "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"))  # fmt: skip
        return total

    def wait_until_drained(self, runtime: LocalRuntime, timeout: float) -> float:
        started = time.monotonic()
        quiet_checks = 0
        next_report = started
        while quiet_checks < 2:
            if time.monotonic() - started > timeout:
                raise LocalCloudError(
                    f"the pipeline did not drain within {timeout:.0f} s ({self.backlog()} left)"
                )
            backlog = self.backlog()
            quiet_checks = quiet_checks + 1 if backlog == 0 and runtime.idle else 0
            if time.monotonic() >= next_report:
                done = {f.spec.environment.get("POWERTOOLS_SERVICE_NAME", name): f.stats.records_succeeded
                        for name, f in runtime.functions.items()}  # fmt: skip
                self.say(f"  {time.monotonic() - started:5.1f} s  backlog {backlog:5d}  handled "
                         + "  ".join(f"{k} {v}" for k, v in sorted(done.items())))  # fmt: skip
                next_report = time.monotonic() + 2
            time.sleep(0.5)
        return time.monotonic() - started

    def dead_letters(self, queue_url: str) -> Counter[str]:
        reasons: Counter[str] = Counter()
        dlq = self.deployment.dead_letter_queues[queue_url]
        while True:
            messages = self.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                                VisibilityTimeout=300).get("Messages", [])  # fmt: skip
            if not messages:
                return reasons
            for message in messages:
                attribute = message.get("MessageAttributes", {}).get("error-type", {})
                reasons[attribute.get("StringValue", "no reason attached")] += 1

    def effects(self, name: str) -> int:
        if name == "inventory":
            return self.inventory.reservation_count()
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.deployment.outputs[EFFECT_TABLES[name]], Select="COUNT"
        )
        return sum(page["Count"] for page in pages)

    def reconcile(self, published: Published, runtime: LocalRuntime) -> list[ConsumerReport]:
        reports = []
        for mapping in self.deployment.mappings:
            function = runtime.functions[mapping.function]
            name = function.spec.environment["POWERTOOLS_SERVICE_NAME"]
            [subscription] = [s for s in self.deployment.subscriptions if s["endpoint"] == mapping.queue_arn]
            policy = json.loads(subscription.get("FilterPolicy", "{}"))

            def routed(messages: list[OutgoingMessage], policy: Mapping[str, Any] = policy) -> int:
                return sum(matches(policy, m.attributes) for m in messages)

            expected_dead = Counter({kind: routed(ms) for kind, ms in published.poison.items() if routed(ms)})
            stats = function.stats
            reports.append(
                ConsumerReport(
                    name=name,
                    routed=routed(published.all),
                    delivered_ok=stats.records_succeeded,
                    effects=self.effects(name),
                    expected_effects=routed(published.unique),
                    expected_duplicates=routed(published.duplicates),
                    dead_letters=self.dead_letters(mapping.queue_url),
                    expected_dead_letters=expected_dead,
                )
            )
        return reports


def _synthesize(outdir: Path) -> None:
    from app import build_app

    # The CLI sets this context; it records each function's asset folder in the template.
    build_app(context={"aws:cdk:enable-asset-metadata": "true"}, outdir=str(outdir)).synth()


def print_reconciliation(
    published: Published, reports: list[ConsumerReport], say: Callable[[str], None]
) -> None:
    say("")
    say(f"published {len(published.all)} messages to the orders topic: {len(published.unique)} unique events, "
        f"{len(published.duplicates)} duplicates, "
        + ", ".join(f"{len(ms)} {kind}" for kind, ms in published.poison.items()))  # fmt: skip
    header = f"{'consumer':<10} {'routed':>6} {'handled':>7} {'effects':>7} {'dups suppressed':>15}  {'in DLQ (reason)':<44} outcome"
    say(header)
    say("-" * len(header))
    for r in reports:
        dlq = ", ".join(f"{n} {k}" for k, n in sorted(r.dead_letters.items())) or "0"
        say(f"{r.name:<10} {r.routed:>6} {r.delivered_ok:>7} {r.effects:>7} {r.duplicates_suppressed:>15}  "
            f"{dlq:<44} {'OK' if r.ok else 'MISMATCH'}")  # fmt: skip
        if not r.ok:
            say(f"   expected: handled {r.routed}, effects {r.expected_effects}, duplicates {r.expected_duplicates}, "
                f"DLQ {dict(r.expected_dead_letters)}")  # fmt: skip


def run_demo(*, events: int = 1000, port: int | None = None, timeout: float = 240.0,
             say: Callable[[str], None] = print) -> bool:  # fmt: skip
    """Run the demo; True if every number reconciles."""
    started = time.monotonic()
    outdir = BUILD / "cdk.out"
    say("synthesizing the stack ...")
    _synthesize(outdir)
    with moto_server(port or free_port()) as endpoint:
        deployment = provision(outdir, "AsyncStack", endpoint)
        say(f"provisioned the template on moto at {endpoint} in {time.monotonic() - started:.1f} s "
            f"({len(deployment.functions)} functions, {len(deployment.mappings)} event source mappings)")  # fmt: skip
        say(
            "  not provisioned locally: "
            + ", ".join(f"{n} {k}" for k, n in sorted(deployment.not_provisioned.items()))
        )
        demo = Demo(endpoint, deployment, say)
        demo.seed_stock()
        runtime = LocalRuntime(deployment.functions, deployment.mappings, endpoint, BUILD / "logs")
        runtime.start()
        try:
            published = build_events(events, duplicate_share=0.04, poison_share=0.02)
            t0 = time.monotonic()
            demo.publish(published)
            say(
                f"published {len(published.all)} messages in {time.monotonic() - t0:.1f} s (PublishBatch, 10 a call)"
            )
            drained = demo.wait_until_drained(runtime, timeout)
            say(
                f"pipeline drained in {drained:.1f} s; function logs in {(BUILD / 'logs').relative_to(ROOT)}/"
            )
            reports = demo.reconcile(published, runtime)
        finally:
            runtime.close()
    print_reconciliation(published, reports, say)
    ok = all(r.ok for r in reports)
    say("")
    say(
        f"{'every number reconciles' if ok else 'RECONCILIATION FAILED'} ({time.monotonic() - started:.0f} s in all)"
    )
    return ok
