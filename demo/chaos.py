"""``make chaos`` (``python -m demo chaos``): order events through the deployed pipeline, and the stack's other
stateful patterns (delayed jobs, webhook deliveries, exports, the saga, request-reply) at the same
time, while faults are injected; then every invariant checked and printed.

The events carry duplicates (the same event published twice, as SNS may deliver it) and poison
(malformed, schema-invalid, unknown type). The local cloud, configured explicitly with a
``FaultInjector`` and ``PatternFaults``, adds transient write failures, DynamoDB throttling,
environments killed mid-batch and invocations held past their timeout. Records of a crashed batch
come back after the queue's visibility timeout; instead of waiting, the run advances the local
clock, which SQS and the scheduler follow, once nothing else can run and the leases and in-progress
idempotency records of the cut-short invocations have expired. Scheduled
work (follow-ups days ahead, webhook retries hours apart) is reached the same way: the clock moves to
the next due time.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from asyncstack.runtime.publisher import OutgoingMessage
from demo import example
from demo.chaos_patterns import Invariant, PatternFaults, Workload, workloads
from demo.faults import FaultInjector, FaultPlan
from demo.pipeline import (
    EFFECT_TABLES,
    SKUS,
    Consumer,
    OrderPipeline,
    Published,
    build_events,
    matches,
    read_dead_letters,
)
from localcloud import logs
from localcloud.cloud import LocalCloud, running_cloud
from localcloud.server import LocalCloudError, free_port
from localcloud.sqs.pollers import sqs_mappings
from shared.events import OrderCreated
from shared.inventory import InventoryRepository

# Enough that no order of a 10,000-event run is refused for stock: every reservation must land.
CHAOS_STOCK = 10**9
# How far the clock may move for the patterns' schedules: their latest is a follow-up 3 days after a
# signup; webhook retries end 17.5 hours after a job.
CLOCK_HORIZON = timedelta(days=4)


@dataclass(frozen=True)
class ChaosConfig:
    events: int = 10_000
    duplicate_share: float = 0.05
    poison_share: float = 0.01
    transient_share: float = 0.10  # of unique events: their first write fails in every consumer
    throttle_share: float = 0.03  # of the functions' DynamoDB requests
    kills: int | None = None  # environments killed mid-batch (default: 1 per 1,000 events, at least 2)
    timeouts: int | None = None  # invocations held past their timeout (default: 1 per 5,000, at least 1)
    seed: int = 7
    patterns: bool = True  # the other stateful patterns too (delayed jobs, webhooks, exports, saga, RPC)

    @property
    def kill_count(self) -> int:
        return self.kills if self.kills is not None else max(2, self.events // 1000)

    @property
    def timeout_count(self) -> int:
        return self.timeouts if self.timeouts is not None else max(1, self.events // 5000)


@dataclass
class ChaosReport:
    config: ChaosConfig
    published: Published
    faults: dict[str, int]
    invariants: list[Invariant] = field(default_factory=list)
    clock_advances: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.invariants) and all(i.ok for i in self.invariants)


def _order(message: OutgoingMessage) -> OrderCreated:
    return OrderCreated.model_validate(json.loads(message.body)["data"])


def _spaced(count: int, total: int, offset: float) -> frozenset[int]:
    """``count`` write numbers spread evenly over ``total`` writes."""
    return frozenset(max(1, round(total * (k + offset) / (count + 1))) for k in range(count))


class ChaosRun:
    def __init__(self, cloud: LocalCloud, config: ChaosConfig, say: Callable[[str], None]) -> None:
        self.cloud = cloud
        self.config = config
        self.say = say
        self.run = f"chaos{uuid.uuid4().hex[:6]}-"
        self.outputs = cloud.stack_outputs()
        self.pipeline = OrderPipeline(cloud, say)
        self.sqs = cloud.client("sqs")
        self.dynamodb = cloud.client("dynamodb")
        self.published = build_events(
            config.events, config.duplicate_share, config.poison_share, seed=config.seed, prefix=self.run
        )
        self.orders = [_order(m) for m in self.published.unique]
        unique = [order.order_id for order in self.orders]
        chosen = random.Random(config.seed).sample(unique, round(len(unique) * config.transient_share))
        self.transient = frozenset(chosen)
        self.injector = FaultInjector(self._plan(), cloud.runtime)
        self.clock_advances = 0
        self.horizon = cloud.clock.now() + CLOCK_HORIZON
        self.first, self.later = workloads(cloud, self.run, config.events) if config.patterns else ([], [])
        self.patterns: list[Workload] = [*self.first, *self.later]
        self.pattern_faults = PatternFaults([t for w in self.patterns for t in w.targets()], cloud.runtime)

    def _table(self, consumer: Consumer) -> str:
        return self.outputs[EFFECT_TABLES[consumer.name]]

    def _plan(self) -> FaultPlan:
        # Inventory and email make one single-item write per event: crashes and timeouts are
        # spread over those writes, so they land mid-batch throughout the run.
        single_writes = 2 * len(self.published.unique)
        return FaultPlan(
            writers={self._table(c): c.function_arn for c in self.pipeline.consumers},
            token_pattern=re.escape(self.run) + r"ord-\d+",
            transient=self.transient,
            throttle_share=self.config.throttle_share,
            kill_at=_spaced(self.config.kill_count, single_writes, 1.0),
            timeout_at=_spaced(self.config.timeout_count, single_writes, 0.5),
            seed=self.config.seed,
        )

    # -- the run ---------------------------------------------------------------------------

    def execute(self, timeout: float) -> ChaosReport:
        started = time.monotonic()
        deadline = started + timeout
        inventory = InventoryRepository(self.outputs["InventoryTableName"], client=self.dynamodb)
        for sku in SKUS:
            inventory.put_stock(sku, CHAOS_STOCK)
        try:
            with self.cloud.request_hook(self.injector), self.cloud.request_hook(self.pattern_faults):
                self.pipeline.publish(self.published)
                for workload in self.first:
                    workload.start()
                self.say(
                    f"published {len(self.published.all)} messages"
                    + (f"; started {', '.join(w.name for w in self.first)}" if self.first else "")
                    + "; faults on, draining ..."
                )
                self._drain(deadline, self.cloud.idle)
                if self.later:
                    for workload in self.later:
                        workload.start()
                    self.say(f"pipeline drained; started {', '.join(w.name for w in self.later)}")
                self._drain(deadline, self._finished)
            report = ChaosReport(
                self.config, self.published, self._faults(), clock_advances=self.clock_advances
            )
            report.invariants = self._invariants(inventory)
            for workload in self.patterns:
                report.invariants += workload.invariants()
        finally:
            for workload in self.patterns:
                workload.close()
        report.seconds = time.monotonic() - started
        return report

    def _finished(self) -> bool:
        return self.cloud.idle() and all(w.done() for w in self.patterns)

    def _consumed(self) -> list[dict[str, Any]]:
        names = {mapping.queue_arn.rsplit(":", 1)[-1] for mapping in sqs_mappings().values()}
        return [q for name, q in self.cloud.queues().items() if name in names]

    def _nothing_runs(self, queues: list[dict[str, Any]]) -> bool:
        """Nobody working and nothing to receive now: what is left waits on the clock (hidden or delayed
        messages, schedules), or on a client in real time."""
        return (
            self.cloud.mappings.idle
            and self.cloud.async_invoker.pending == 0
            and not any(q["visible"] for q in queues)
            and not any(w.busy() for w in self.patterns)
        )

    def _visibility_timeout(self) -> int:
        return max(
            int(self.sqs.get_queue_attributes(QueueUrl=q["url"], AttributeNames=["VisibilityTimeout"])[
                "Attributes"]["VisibilityTimeout"])
            for q in self._consumed()
        )  # fmt: skip

    def _advance(self, queues: list[dict[str, Any]], visibility: int) -> str | None:
        """Move the clock to the next thing that waits on it; what it moved for, or None."""
        if any(q["in_flight"] or q["delayed"] for q in queues):
            self.cloud.clock.advance(visibility + 1)
            return "visibility"
        due = self.cloud.scheduler.next_due() if self.patterns else None
        if due is None or due > self.horizon:  # beyond it only recurring schedules fire, nothing of ours
            return None
        self.cloud.clock.advance(max(1.0, (due - self.cloud.clock.now()).total_seconds() + 1))
        self.cloud.scheduler.fire_due()
        return "schedule"

    def _drain(self, deadline: float, finished: Callable[[], bool]) -> None:
        visibility = self._visibility_timeout()
        stuck_since: float | None = None
        next_report = time.monotonic()
        while not finished():
            now = time.monotonic()
            if now > deadline:
                raise LocalCloudError(
                    "the chaos run did not finish in time: raise --timeout or use fewer --events"
                )
            queues = self._consumed()  # one look per round: each takes moto's lock
            settled = now >= max(self.injector.log.settled_at, self.pattern_faults.log.settled_at)
            if not self._nothing_runs(queues):
                stuck_since = None
            elif stuck_since is None:
                stuck_since = now
            elif now - stuck_since >= 1.0 and settled:
                if not self._advance(queues, visibility):
                    return  # nothing will happen any more: the invariants say whether all was done
                self.clock_advances += 1
                stuck_since = None
            if now >= next_report:
                backlog = sum(q["visible"] + q["in_flight"] for q in queues)
                log, patterns = self.injector.log, self.pattern_faults.log
                self.say(
                    f"  {backlog:5d} queued  handled "
                    + "  ".join(f"{k} {v}" for k, v in sorted(self.pipeline.handled().items()))
                    + f"  | faults: transient {log.transient_requests + sum(patterns.transient.values())}, "
                    f"throttled {log.throttled}, kills {log.kills + sum(patterns.kills.values())}, "
                    f"timeouts {log.timeouts + sum(patterns.timeouts.values())}, clock +{self.clock_advances}"
                )
                next_report = now + 5
            time.sleep(1.0)

    def _faults(self) -> dict[str, int]:
        log = self.injector.log
        return {
            "duplicates published": len(self.published.duplicates),
            "poison published": sum(len(ms) for ms in self.published.poison.values()),
            "events chosen to fail transiently": len(self.transient),
            "write requests failed transiently": log.transient_requests,
            "requests throttled": log.throttled,
            "crashes (environments killed mid-batch)": log.kills,
            "environments killed": log.environments_killed,
            "invocations timed out": log.timeouts,
            **{f"{target}: failed transiently": n for target, n in self.pattern_faults.log.transient.items()},
            **{f"{target}: crashes": n for target, n in self.pattern_faults.log.kills.items()},
            **{f"{target}: timeouts": n for target, n in self.pattern_faults.log.timeouts.items()},
        }

    # -- the invariants --------------------------------------------------------------------

    def _scan(self, table: str, key: str, prefix: str, attribute: str) -> list[str]:
        """``attribute`` of every row whose ``key`` starts with ``prefix``."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=table, FilterExpression="begins_with(#k, :p)",
            ExpressionAttributeNames={"#k": key}, ExpressionAttributeValues={":p": {"S": prefix}},
        )  # fmt: skip
        return [item[attribute]["S"] for page in pages for item in page["Items"]]

    def _effects(self, consumer: Consumer) -> list[str]:
        """The order ids this run's events took effect for, one entry per row."""
        table = self._table(consumer)
        if consumer.name == "inventory":
            return [pk.split("#", 1)[1] for pk in self._scan(table, "pk", f"reservation#{self.run}", "pk")]
        if consumer.name == "email":
            return [m.split("#", 1)[1] for m in self._scan(table, "message_id", f"order-confirmation#{self.run}",
                                                         "message_id")]  # fmt: skip
        return self._scan(table, "event_id", self.run, "order_id")

    def _dead_letters(self, consumer: Consumer) -> Counter[tuple[str, str]]:
        """(body, reason) of this run's messages in the consumer's DLQ."""
        return Counter(
            letter
            for letter in read_dead_letters(self.sqs, consumer.dead_letter_url, hide_seconds=60)
            if self.run in letter[0]
        )

    def _invariants(self, inventory: InventoryRepository) -> list[Invariant]:
        checks: list[Invariant] = []
        for consumer in self.pipeline.consumers:
            routed = [m for m in self.published.unique if matches(consumer.filter_policy, m.attributes)]
            expected = {_order(m).order_id for m in routed}
            rows = self._effects(consumer)
            found = set(rows)
            lost, extra = expected - found, found - expected
            checks.append(Invariant(
                f"{consumer.name}: no event lost", f"{len(expected)} orders took effect",
                f"{len(expected & found)} took effect, {len(lost)} missing" + (f" e.g. {min(lost)}" if lost else ""),
                not lost and not extra,
            ))  # fmt: skip
            checks.append(Invariant(
                f"{consumer.name}: no effect applied twice", f"{len(expected)} rows, one per unique event",
                f"{len(rows)} rows for {len(found)} orders", len(rows) == len(found) == len(expected),
            ))  # fmt: skip
            hit = self.injector.log.transient_hit.get(self._table(consumer), set())
            processed = hit & found
            checks.append(Invariant(
                f"{consumer.name}: every transient event processed",
                f"{len(hit)} events failed transiently, all processed",
                f"{len(processed)} processed", bool(hit) and processed == hit,
            ))  # fmt: skip
            expected_dead = Counter(
                (m.body, kind) for kind, messages in self.published.poison.items() for m in messages
                if matches(consumer.filter_policy, m.attributes)
            )  # fmt: skip
            dead = self._dead_letters(consumer)
            checks.append(Invariant(
                f"{consumer.name}: every poison event in the DLQ once, with its reason",
                f"{sum(expected_dead.values())} ({', '.join(sorted({k for _, k in expected_dead}))})",
                f"{sum(dead.values())} this run's messages in the DLQ, "
                f"{sum(n for n in dead.values() if n > 1)} more than once, "
                f"{sum((dead - expected_dead).values())} unexpected or with another reason",
                dead == expected_dead,
            ))  # fmt: skip
        checks.append(self._stock_invariant(inventory))
        return checks

    def _stock_invariant(self, inventory: InventoryRepository) -> Invariant:
        """A reservation applied twice would take its quantities off the stock twice."""
        ordered: Counter[str] = Counter()
        for order in self.orders:
            for line in order.lines:
                ordered[line.sku] += line.quantity
        taken = Counter({sku: CHAOS_STOCK - inventory.available(sku) for sku in SKUS})
        return Invariant(
            "inventory: stock moved once per unique order", f"{sum(ordered.values())} units taken",
            f"{sum(taken.values())} units taken", +taken == +ordered,
        )  # fmt: skip


def print_report(report: ChaosReport, say: Callable[[str], None]) -> None:
    say("")
    say("faults injected: " + ", ".join(f"{name} {count}" for name, count in report.faults.items()))
    say(f"clock advanced past the visibility timeout {report.clock_advances} time(s)")
    rows = [("invariant", "expected", "observed", "outcome")]
    rows += [(i.name, i.expected, i.observed, "OK" if i.ok else "FAILED") for i in report.invariants]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for number, row in enumerate(rows):
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
        if number == 0:
            say("-" * (sum(widths) + 6 + len("outcome")))
    say("")
    verdict = "every invariant holds" if report.ok else "INVARIANTS VIOLATED"
    say(f"{verdict} ({report.config.events} events, {report.seconds:.0f} s)")


def run_chaos(
    config: ChaosConfig, *, cloud: LocalCloud | None = None, port: int | None = None,
    timeout: float = 1800.0, say: Callable[[str], None] = logs.say,
) -> ChaosReport:  # fmt: skip
    """Run on ``cloud`` (or a new local cloud, deployed here); the report says whether every invariant held."""
    with ExitStack() as stack:
        if cloud is None:
            say("starting the local cloud and deploying the stack with the CDK CLI ...")
            cloud = stack.enter_context(
                running_cloud(port=port or free_port(), api_port=None, workdir=example.WORKDIR)
            )
            example.deploy(cloud)
        report = ChaosRun(cloud, config, say).execute(timeout)
    print_report(report, say)
    return report
