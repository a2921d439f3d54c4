"""AWS API calls per processed record, by service, made by each handler (idempotency included).

Every client ``asyncstack.runtime.aws.client`` hands out is replaced by one with a ``before-call`` hook that
counts the call (once per API call, not per HTTP retry). The event source mapping's own
ReceiveMessage and DeleteMessageBatch are made by Lambda, not by the handler, and are not counted.

The baseline is the design's minimum: per unique valid event, inventory makes one
TransactWriteItems and email one PutItem, plus two idempotency writes (PutItem in progress,
UpdateItem completed); analytics makes one BatchWriteItem per 25 distinct valid events of a batch,
with no idempotency records. A duplicate needs no call (the idempotency record or the keyed row
already covers it) and a poison record one SQS SendMessage to the dead-letter queue. When each
batch runs in a new execution environment (as under concurrency), the local idempotency cache is
empty, so a duplicate of an event from an earlier batch costs at least one idempotency call.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

from asyncstack.runtime import aws
from asyncstack.runtime.errors import NonRetryableError
from asyncstack.runtime.events import decode_event
from bench.environment import quiet_stdout
from bench.localaws import lambda_context, local_aws
from bench.orders import POISON_BODIES, order_body
from bench.results import Metric, command, ratio
from shared.events import EVENT_MODELS

GROUP = "api_calls"
SERVICES = ("dynamodb", "sqs")
IDEMPOTENCY_WRITES = 2


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    batch_size: int  # as the stack's event source mapping is configured
    writes_per_event: int  # the business write, per unique valid event (0: bulk)


HANDLERS = (
    HandlerSpec("inventory", batch_size=10, writes_per_event=1),
    HandlerSpec("email", batch_size=10, writes_per_event=1),
    HandlerSpec("analytics", batch_size=100, writes_per_event=0),
)
BULK_WRITE_LIMIT = 25


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duplicate_share: float
    poison_share: float
    cold: bool = False  # a new execution environment (module, clients, caches) per batch


SCENARIOS = (
    Scenario("unique", "unique valid events, one warm environment", 0.0, 0.0),
    Scenario("mixed", "10% duplicates, 3% poison, one warm environment", 0.10, 0.03),
    Scenario("mixed_cold", "10% duplicates, 3% poison, a new environment per batch", 0.10, 0.03, cold=True),
)


def bodies_for(scenario: Scenario, records: int, seed: int = 7) -> list[str]:
    """``records`` bodies: duplicates re-send an earlier event as is, poison records cycle the kinds."""
    rng = random.Random(seed)
    duplicates, poison = round(records * scenario.duplicate_share), round(records * scenario.poison_share)
    positions = list(range(1, records))
    rng.shuffle(positions)
    duplicate_at, poison_at = set(positions[:duplicates]), positions[duplicates : duplicates + poison]
    bodies: list[str] = []
    for i in range(records):
        if i in duplicate_at:
            valid = [b for b in bodies if b not in POISON_BODIES]
            bodies.append(rng.choice(valid))
        elif i in poison_at:
            bodies.append(POISON_BODIES[poison_at.index(i) % len(POISON_BODIES)])
        else:
            bodies.append(order_body(f"{scenario.name}-{i:05d}"))
    return bodies


@contextlib.contextmanager
def counting_clients() -> Iterator[Counter[tuple[str, str]]]:
    """Make ``asyncstack.runtime.aws.client`` hand out clients that count their API calls by (service, operation)."""
    counts: Counter[tuple[str, str]] = Counter()
    factory = aws.client.__wrapped__  # the uncached original: makes a fresh client

    def count(event_name: str, **kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        counts[service, operation] += 1

    @functools.cache
    def client(service: str) -> Any:
        made = factory(service)
        made.meta.events.register("before-call.*.*", count)
        return made

    with mock.patch.object(aws, "client", client):
        yield counts
    aws.reset_clients()


def minimum_calls(spec: HandlerSpec, events: Sequence[dict[str, Any]], *, cold: bool) -> dict[str, int]:
    """The design's minimum calls by service for these events, batched as delivered."""
    seen: set[str] = set()
    dynamodb = sqs = 0
    for event in events:
        in_batch: set[str] = set()
        for record in event["Records"]:
            try:
                envelope, _ = decode_event(record["body"], EVENT_MODELS)
            except NonRetryableError:
                sqs += 1
                continue
            in_batch.add(envelope.event_id)
        if spec.writes_per_event:
            new = in_batch - seen
            dynamodb += len(new) * (spec.writes_per_event + IDEMPOTENCY_WRITES)
            if cold:  # no local cache: each earlier batch's event must be looked up once
                dynamodb += len(in_batch & seen)
        else:
            dynamodb += math.ceil(len(in_batch) / BULK_WRITE_LIMIT)
        seen |= in_batch
    return {"dynamodb": dynamodb, "sqs": sqs}


def _cold_start(spec: HandlerSpec) -> Any:
    """The handler module as a new execution environment sees it: a new consumer, empty caches.

    The (counting) clients are kept: making them again costs time and no API call.
    """
    return importlib.reload(importlib.import_module(f"functions.{spec.name}.handler"))


def measure(
    spec: HandlerSpec, scenario: Scenario, bodies: Sequence[str]
) -> tuple[Counter[tuple[str, str]], dict[str, int]]:
    """Run the handler over ``bodies`` in batches; its calls by (service, operation) and the minimum."""
    with local_aws() as cloud:
        cloud.seed_stock()
        events = cloud.events(bodies, spec.batch_size)
        with counting_clients() as counts, quiet_stdout():
            module = _cold_start(spec)
            for i, event in enumerate(events):
                if scenario.cold and i:
                    module = _cold_start(spec)
                response = module.handler(event, lambda_context(f"bench-{spec.name}"))
                if response.get("batchItemFailures"):
                    raise RuntimeError(f"{spec.name}: unexpected failures {response}")
                cloud.forget_reservations(event)  # not counted: the benchmark's own client
            calls = Counter(counts)
    return calls, minimum_calls(spec, events, cold=scenario.cold)


def describe(calls: Counter[tuple[str, str]]) -> str:
    return ", ".join(f"{op} {n}" for (_, op), n in sorted(calls.items())) or "no calls"


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    """Metrics, and one line per handler and scenario naming the operations behind the counts."""
    records = 100 if quick else 200
    metrics: list[Metric] = []
    notes: list[str] = []
    for spec in HANDLERS:
        for scenario in SCENARIOS:
            calls, minimum = measure(spec, scenario, bodies_for(scenario, records))
            notes.append(f"{spec.name}.{scenario.name} ({records} records): {describe(calls)}")
            for service in SERVICES:
                made = sum(n for (svc, _), n in calls.items() if svc == service)
                metrics.append(
                    Metric(
                        name=f"api_calls.{spec.name}.{scenario.name}.{service}_per_record",
                        value=made / records,
                        unit="calls/record",
                        baseline=(
                            "design minimum, handler calls only"
                            " (ESM ReceiveMessage/DeleteMessageBatch not counted);"
                            f" {records} records, {scenario.description}, batches of {spec.batch_size}"
                        ),
                        baseline_value=minimum[service] / records,
                        ratio=ratio(made, minimum[service]),
                        command=command(GROUP, quick=quick),
                    )
                )
    return metrics, notes
