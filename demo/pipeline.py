"""The order pipeline as deployed, driven from outside: publish order events (some duplicated, some
poison) to the orders topic, wait for the consumers to drain them, and reconcile every number with
what was published: each unique event took effect exactly once per consumer, each duplicate was
suppressed, each poison record sits in its consumer's DLQ with its reason.

The pub-sub scenario of ``make demo``, the chaos run and the benchmarks drive the pipeline with it.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncstack.runtime.publisher import BatchPublisher, OutgoingMessage
from localcloud.cloud import LocalCloud
from localcloud.server import LocalCloudError
from shared.events import ORDER_CREATED, OrderCreated, OrderLine
from shared.inventory import InventoryRepository
from shared.orders import event_message, order_created

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


def build_events(
    total: int, duplicate_share: float, poison_share: float, seed: int = 7, prefix: str = ""
) -> Published:
    """``total`` messages; ``prefix`` starts every order and event id (runs sharing a cloud stay apart)."""
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
            order_id=f"{prefix}ord-{i:05d}", customer_id=f"cus-{rng.randint(1, 200):04d}",
            customer_email=f"customer{i}@example.com", lines=lines,
        )  # fmt: skip
        published.unique.append(event_message(order_created(order, event_id=f"{prefix}evt-{i:05d}")))
    published.duplicates = [rng.choice(published.unique) for _ in range(duplicate_count)]
    valid = json.loads(published.unique[0].body)
    for i in range(poison_count):
        kind = POISON_KINDS[i % len(POISON_KINDS)]
        if kind == "MalformedJson":
            message = OutgoingMessage(body=f'{{"event_id": "{prefix}evt-broken-{i}", "type": "order.created", ',
                                      attributes={"type": ORDER_CREATED})  # fmt: skip
        elif kind == "SchemaInvalid":
            body = {**valid, "event_id": f"{prefix}evt-invalid-{i}", "data": {**valid["data"], "lines": []}}
            message = OutgoingMessage(body=json.dumps(body), attributes={"type": ORDER_CREATED})
        else:
            body = {**valid, "event_id": f"{prefix}evt-unknown-{i}", "type": "order.teleported"}
            message = OutgoingMessage(body=json.dumps(body), attributes={"type": "order.teleported"})
        published.poison.setdefault(kind, []).append(message)
    return published


def read_dead_letters(sqs: Any, queue_url: str, *, hide_seconds: int) -> list[tuple[str, str]]:
    """(body, ``error-type`` reason) of every message in a dead-letter queue. Each is hidden for
    ``hide_seconds`` once read: that is how a reader gets past it to the next ones."""
    found: list[tuple[str, str]] = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=hide_seconds,
    ).get("Messages", []):
        for message in messages:
            attribute = message.get("MessageAttributes", {}).get("error-type", {})
            found.append((message["Body"], attribute.get("StringValue", "no reason attached")))
    return found


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


@dataclass(frozen=True)
class Consumer:
    """A worker as deployed: its function, the queue its event source mapping polls, and that queue's DLQ."""

    name: str
    function_arn: str
    mapping_uuid: str
    queue_url: str
    dead_letter_url: str
    filter_policy: Mapping[str, Any] | None


def deployed_consumers(cloud: LocalCloud, topic_output: str = "OrdersTopicArn") -> list[Consumer]:
    """The consumers of a topic, read from the deployment itself: its subscriptions, the event source
    mappings of the subscribed queues, and the queues' redrive policies."""
    sqs, sns, lambda_ = cloud.client("sqs"), cloud.client("sns"), cloud.client("lambda")
    topic = cloud.stack_outputs()[topic_output]
    policies: dict[str, Any] = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
        for subscription in page["Subscriptions"]:
            attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
            policy = attributes["Attributes"].get("FilterPolicy")
            policies[subscription["Endpoint"]] = json.loads(policy) if policy else None
    consumers = []
    for mapping in lambda_.list_event_source_mappings()["EventSourceMappings"]:
        queue_arn = mapping["EventSourceArn"]
        if queue_arn not in policies:
            continue
        url = sqs.get_queue_url(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
        redrive = json.loads(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
                "RedrivePolicy"
            ]
        )
        dead_letter_url = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].split(":")[-1])[
            "QueueUrl"
        ]
        environment = lambda_.get_function_configuration(FunctionName=mapping["FunctionArn"])["Environment"]
        consumers.append(
            Consumer(
                name=environment["Variables"]["POWERTOOLS_SERVICE_NAME"],
                function_arn=mapping["FunctionArn"],
                mapping_uuid=mapping["UUID"],
                queue_url=url,
                dead_letter_url=dead_letter_url,
                filter_policy=policies.get(queue_arn),
            )
        )
    return sorted(consumers, key=lambda c: c.name)


class OrderPipeline:
    def __init__(self, cloud: LocalCloud, say: Callable[[str], None]) -> None:
        self.cloud = cloud
        self.say = say
        self.outputs = cloud.stack_outputs()
        self.consumers = deployed_consumers(cloud)
        self.sqs = cloud.client("sqs")
        self.dynamodb = cloud.client("dynamodb")
        # Records handled and effects recorded before this run (by other users of the same cloud) are
        # not this run's.
        self.handled_before = self._handled_so_far()
        self.effects_before = {c.name: self._effects_so_far(c.name) for c in self.consumers}

    @property
    def inventory(self) -> InventoryRepository:
        return InventoryRepository(self.outputs["InventoryTableName"], client=self.dynamodb)

    def seed_stock(self) -> None:
        for sku in SKUS:
            self.inventory.put_stock(sku, STOCK_PER_SKU)

    def publish(self, published: Published, sent_at: dict[str, float] | None = None) -> None:
        """Publish every message; ``sent_at`` (if given) gets, per body, when it was first handed over."""
        publisher = BatchPublisher.for_topic(self.outputs["OrdersTopicArn"], client=self.cloud.client("sns"),
                                             max_interval_seconds=None)  # fmt: skip
        with publisher:
            for message in published.all:
                if sent_at is not None:
                    sent_at.setdefault(message.body, time.time())
                publisher.add(message)
        failed = [r for r in publisher.results if not r.ok]
        if failed:
            raise LocalCloudError(f"{len(failed)} messages could not be published: {failed[0].error_message}")

    def _handled_so_far(self) -> dict[str, int]:
        stats = self.cloud.mappings.stats()
        return {
            c.name: stats[c.mapping_uuid].records_succeeded if c.mapping_uuid in stats else 0
            for c in self.consumers
        }

    def handled(self) -> dict[str, int]:
        return {name: count - self.handled_before[name] for name, count in self._handled_so_far().items()}

    def wait_until_drained(self, timeout: float) -> float:
        started = time.monotonic()
        next_report = started

        def drained() -> bool:
            nonlocal next_report
            if time.monotonic() >= next_report:
                backlog = sum(
                    q["visible"] + q["in_flight"] for q in self.cloud.queues().values() if not q["dlq"]
                )
                self.say(f"  {time.monotonic() - started:5.1f} s  backlog {backlog:5d}  handled "
                         + "  ".join(f"{k} {v}" for k, v in sorted(self.handled().items())))  # fmt: skip
                next_report = time.monotonic() + 2
            return self.cloud.idle()

        self.cloud.wait_until(drained, timeout, "the pipeline to drain", poll=0.5)
        return time.monotonic() - started

    def dead_letters(self, consumer: Consumer, marker: str | None = None) -> Counter[str]:
        """The consumer's DLQ by reason; with ``marker``, only the messages whose body holds it (a shared
        cloud's DLQs hold other runs' poison too)."""
        return Counter(
            reason
            for body, reason in read_dead_letters(self.sqs, consumer.dead_letter_url, hide_seconds=300)
            if marker is None or marker in body
        )

    def effects(self, name: str) -> int:
        return self._effects_so_far(name) - self.effects_before[name]

    def _effects_so_far(self, name: str) -> int:
        if name == "inventory":
            return self.inventory.reservation_count()
        # The outbox also holds the signup journey's emails: count order confirmations only.
        only = (
            {"FilterExpression": "begins_with(message_id, :kind)",
             "ExpressionAttributeValues": {":kind": {"S": "order-confirmation#"}}}
            if name == "email" else {}
        )  # fmt: skip
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.outputs[EFFECT_TABLES[name]], Select="COUNT", **only
        )
        return sum(page["Count"] for page in pages)

    def reconcile(self, published: Published, marker: str | None = None) -> list[ConsumerReport]:
        """``marker``: a string in every published body (the ids' prefix), to count only this run's dead letters."""
        reports = []
        handled = self.handled()
        for consumer in self.consumers:

            def routed(
                messages: list[OutgoingMessage], policy: Mapping[str, Any] | None = consumer.filter_policy
            ) -> int:
                return sum(matches(policy, m.attributes) for m in messages)

            expected_dead = Counter({kind: routed(ms) for kind, ms in published.poison.items() if routed(ms)})
            reports.append(
                ConsumerReport(
                    name=consumer.name,
                    routed=routed(published.all),
                    delivered_ok=handled[consumer.name],
                    effects=self.effects(consumer.name),
                    expected_effects=routed(published.unique),
                    expected_duplicates=routed(published.duplicates),
                    dead_letters=self.dead_letters(consumer, marker),
                    expected_dead_letters=expected_dead,
                )
            )
        return reports


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
