"""Framework overhead per record: the inventory handler vs a bare loop doing the same business work.

Both run in-process against the same moto DynamoDB (through the same ``asyncstack.runtime.aws`` client), so
moto's own cost is inside both figures. Per batch of 10 records, only the call is timed (CPU time
of the process); building events and cleaning up is not.

moto's TransactWriteItems deep-copies every table it touches before writing, so its cost grows
with the inventory table. After each batch the new reservation rows are deleted (untimed), so
every batch of either path meets the same small table: a few stock rows and nothing else.

The CPU time spent inside moto (its request parsing, backend and response, everything that would
be AWS's side of the wire) is measured too, so a third figure compares both paths without it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto.core.models import botocore_stubber

from asyncstack.runtime import aws
from bench.environment import quiet_stdout
from bench.localaws import LocalAws, lambda_context, local_aws
from bench.orders import order_body
from bench.results import Metric, command, median, ratio
from shared.events import OrderCreated, OrderLine
from shared.inventory import InventoryRepository

GROUP = "overhead"
BATCH = 10


@dataclass(frozen=True)
class Sizes:
    records: int  # per path and round
    rounds: int


FULL = Sizes(records=200, rounds=5)
QUICK = Sizes(records=50, rounds=2)


class EventFactory:
    """Lambda SQS events with fresh event ids, cloned from one batch of really received messages.

    moto's SQS costs milliseconds per message, too slow to round-trip thousands of them; the
    records keep the shape and attributes of the real ones, with new message ids and bodies.
    """

    def __init__(self, cloud: LocalAws) -> None:
        self.template = cloud.events([order_body(f"template-{i}") for i in range(BATCH)], BATCH)[0]

    def events(self, prefix: str, records: int) -> list[dict[str, Any]]:
        template = self.template["Records"]
        events = []
        for start in range(0, records, BATCH):
            batch = [
                record | {"messageId": str(uuid.uuid4()), "body": order_body(f"{prefix}-{start + i}")}
                for i, record in enumerate(template[: min(BATCH, records - start)])
            ]
            events.append({"Records": batch})
        return events


def bare_batch(event: dict[str, Any], repository: InventoryRepository) -> dict[str, Any]:
    """The business work with no framework: decode JSON (no validation) and reserve the stock."""
    for record in event["Records"]:
        raw = json.loads(record["body"])
        data = raw["data"]
        order = OrderCreated.model_construct(
            order_id=data["order_id"],
            customer_id=data["customer_id"],
            customer_email=data["customer_email"],
            lines=[OrderLine.model_construct(**line) for line in data["lines"]],
            currency=data["currency"],
        )
        repository.reserve(raw["event_id"], order)
    return {"batchItemFailures": []}


class MotoClock:
    """Accumulates the CPU time spent inside moto's request handler while ``running``."""

    def __init__(self) -> None:
        self.ns = 0
        self.running = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = botocore_stubber.process_request

        def timed(request: Any) -> Any:
            if not self.running:
                return original(request)
            start = time.process_time_ns()
            try:
                return original(request)
            finally:
                self.ns += time.process_time_ns() - start

        with mock.patch.object(botocore_stubber, "process_request", timed):
            yield


@dataclass
class Timing:
    total_ns: int = 0
    moto_ns: int = 0


def _cpu_time(
    run: Callable[[dict[str, Any]], dict[str, Any]],
    events: list[dict[str, Any]],
    cloud: LocalAws,
    moto: MotoClock,
    *,
    keep: bool = False,
) -> Timing:
    """CPU time of ``run`` over ``events``; reservations are deleted after each batch unless ``keep``."""
    gc.collect()
    timing = Timing()
    for event in events:
        moto.ns, moto.running = 0, True
        start = time.process_time_ns()
        response = run(event)
        timing.total_ns += time.process_time_ns() - start
        moto.running = False
        timing.moto_ns += moto.ns
        if response.get("batchItemFailures"):
            raise RuntimeError(f"unexpected failures in the overhead benchmark: {response}")
        if not keep:
            cloud.forget_reservations(event)
    return timing


def run(*, quick: bool = False) -> list[Metric]:
    sizes = QUICK if quick else FULL
    moto = MotoClock()
    # stdout: the EMF metrics log_metrics prints per invocation (written, then discarded)
    with local_aws() as cloud, moto.installed(), quiet_stdout():
        cloud.seed_stock()
        inventory = importlib.reload(importlib.import_module("functions.inventory.handler"))

        repository = InventoryRepository(cloud.table("INVENTORY_TABLE_NAME"), client=aws.client("dynamodb"))
        factory = EventFactory(cloud)

        def framework(event: dict[str, Any]) -> dict[str, Any]:
            response: dict[str, Any] = inventory.handler(event, lambda_context())
            return response

        def bare(event: dict[str, Any]) -> dict[str, Any]:
            return bare_batch(event, repository)

        paths = {"framework": framework, "bare": bare}
        # warm-up: first clients, compiled expressions, imports on first use; and a correctness check
        warm = 2 * BATCH
        for name, path in paths.items():
            _cpu_time(path, factory.events(f"warm-{name}", warm), cloud, moto, keep=True)
        if (count := cloud.inventory.reservation_count()) != 2 * warm:
            raise RuntimeError(f"expected {2 * warm} reservations after the warm-up, found {count}")
        for name in paths:
            for event in factory.events(f"warm-{name}", warm):
                cloud.forget_reservations(event)

        with_moto: dict[str, list[float]] = {name: [] for name in paths}
        without_moto: dict[str, list[float]] = {name: [] for name in paths}
        for round_ in range(sizes.rounds):
            order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
            for name in order:
                timing = _cpu_time(
                    paths[name], factory.events(f"r{round_}-{name}", sizes.records), cloud, moto
                )
                with_moto[name].append(timing.total_ns / 1000 / sizes.records)
                without_moto[name].append((timing.total_ns - timing.moto_ns) / 1000 / sizes.records)

    framework_us, bare_us = median(with_moto["framework"]), median(with_moto["bare"])
    framework_own_us, bare_own_us = median(without_moto["framework"]), median(without_moto["bare"])
    detail = (
        f"CPU, median of {sizes.rounds} rounds x {sizes.records} records in batches of {BATCH}; moto in both"
    )
    return [
        Metric(
            name="overhead.inventory.cpu_us_per_record",
            value=framework_us,
            unit="µs/record",
            baseline=f"bare loop: json.loads + InventoryRepository.reserve via the same moto client; {detail}",
            baseline_value=bare_us,
            ratio=ratio(framework_us, bare_us),
            command=command(GROUP, quick=quick),
        ),
        Metric(
            name="overhead.inventory.added_us_per_record",
            value=framework_us - bare_us,
            unit="µs/record",
            baseline=(
                "bare loop µs/record; added = framework - bare"
                " (Powertools batch, parser, idempotency, logging, metrics)"
            ),
            baseline_value=bare_us,
            ratio=ratio(framework_us - bare_us, bare_us),
            command=command(GROUP, quick=quick),
        ),
        Metric(
            name="overhead.inventory.cpu_us_per_record_excl_moto",
            value=framework_own_us,
            unit="µs/record",
            baseline=(
                "the same bare loop, both without the CPU time spent inside moto (AWS's side of the wire)"
            ),
            baseline_value=bare_own_us,
            ratio=ratio(framework_own_us, bare_own_us),
            command=command(GROUP, quick=quick),
        ),
    ]
