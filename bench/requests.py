"""AWS requests per processed event through the deployed fan-out pipeline, and the cost profile.

The local cloud counts every request its endpoint receives (the event source mappings' receives
and deletes included, as SQS bills them). The same events go through the stack twice in one run:

* as deployed (PublishBatch of 10; batches of 10, 10 and 100 with 1, 1 and 5 s windows), compared
  with the design's theoretical minimum: one PublishBatch per 10 events, per consumer queue one
  ReceiveMessage and one DeleteMessageBatch per 10 messages, and the handlers' own minimum
  (``bench.api_calls``);
* naive: the same stack with every event source mapping at batch size 1 and no batching window
  (changed through the Lambda API) and one Publish per event, compared with the stack's figure.

Each run also records what the cost model needs: Lambda invocations and mean duration per
function, DynamoDB request units (from the request bodies: 1 KB write units, 4 KB read units,
doubled inside transactions), and, for the order saga, state transitions per execution. They are
written to ``bench/profile.json`` (untracked), which ``python -m bench.cost`` reads in preference to the
committed ``bench/reference_profile.json``.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncstack.runtime.publisher import AWS_MAX_BATCH_ENTRIES
from bench.api_calls import HANDLERS, minimum_calls
from bench.cost import MEASURED_PROFILE
from bench.results import Metric, command, ratio
from demo.pipeline import (
    SKUS,
    Consumer,
    OrderPipeline,
    Published,
    build_events,
    matches,
)
from demo.scenarios import finished_execution, history
from localcloud.cloud import LocalCloud
from localcloud.server import free_port
from shared.inventory import InventoryRepository

GROUP = "requests"
SERVICES = ("sns", "sqs", "dynamodb")
WITHIN_MINIMUM = 1.10  # the stack's requests per event should be within 10% of the design minimum
NAIVE = {"BatchSize": 1, "MaximumBatchingWindowInSeconds": 0}
SAGA_INPUT = {
    "customer_id": "cus-bench", "customer_email": "bench@example.com", "payment_method": "pm_card_visa",
    "lines": [{"sku": "SKU-RED-MUG", "quantity": 1, "unit_price_cents": 1200}],
}  # fmt: skip


def say(message: str) -> None:
    print(f"  [{GROUP}] {message}", flush=True)


def _item_units(item: Any, unit_kb: int) -> int:
    return max(1, math.ceil(len(json.dumps(item)) / (unit_kb * 1024)))


def request_units(operation: str, request: dict[str, Any]) -> tuple[float, float]:
    """(write, read) request units a DynamoDB request consumes on an on-demand table.

    Item sizes are taken from the request (the JSON size approximates DynamoDB's item size).
    Conditional writes are charged as writes; eventually consistent reads at half a unit.
    """
    if operation in {"PutItem", "UpdateItem", "DeleteItem"}:
        return _item_units(request.get("Item", request.get("Key")), 1), 0.0
    if operation == "BatchWriteItem":
        rows = [row for rows in request["RequestItems"].values() for row in rows]
        return sum(_item_units(next(iter(row.values())), 1) for row in rows), 0.0
    if operation == "TransactWriteItems":
        write = read = 0.0
        for entry in request["TransactItems"]:
            kind, body = next(iter(entry.items()))
            if kind == "ConditionCheck":
                read += 2 * _item_units(body["Key"], 4)
            else:
                write += 2 * _item_units(body.get("Item", body.get("Key")), 1)
        return write, read
    if operation == "GetItem":
        return 0.0, 1.0 if request.get("ConsistentRead") else 0.5
    return 0.0, 0.0


@dataclass
class Meter:
    """What one workload cost: requests by service and operation, DynamoDB units, function work."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    write_units: float = 0.0
    read_units: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, call: tuple[str, str], environ: dict[str, Any], body: bytes) -> None:
        with self._lock:
            self.requests[call] += 1
            if call[0] == "dynamodb":
                write, read = request_units(call[1], json.loads(body or b"{}"))
                self.write_units += write
                self.read_units += read

    def by_service(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (service, _), count in self.requests.items():
            totals[service] += count
        return totals


@dataclass(frozen=True)
class Measured:
    meter: Meter
    units: int
    functions: dict[str, tuple[int, float]]  # logical id -> (invocations, mean duration ms)
    transitions: int = 0

    def profile(self, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "requests_per_unit": {s: n / self.units for s, n in sorted(self.meter.by_service().items())},
            "dynamodb_request_units_per_unit": {
                "write": self.meter.write_units / self.units,
                "read": self.meter.read_units / self.units,
            },
            "functions": {
                name: {"invocations_per_unit": count / self.units, "mean_duration_ms": round(mean, 1)}
                for name, (count, mean) in sorted(self.functions.items())
                if count
            },
            "state_transitions_per_unit": self.transitions / self.units,
            "scheduler_invocations_per_unit": 0.0,
        }


def pipeline_minimum(consumers: Sequence[Consumer], published: Published) -> dict[str, int]:
    """The design's minimum requests for ``published`` through the deployed pipeline, by service."""
    specs = {spec.name: spec for spec in HANDLERS}
    total = {"sns": math.ceil(len(published.all) / AWS_MAX_BATCH_ENTRIES), "sqs": 0, "dynamodb": 0}
    for consumer in consumers:
        spec = specs[consumer.name]
        bodies = [m.body for m in published.all if matches(consumer.filter_policy, m.attributes)]
        events = [
            {"Records": [{"body": body} for body in bodies[i : i + spec.batch_size]]}
            for i in range(0, len(bodies), spec.batch_size)
        ]
        handler = minimum_calls(spec, events, cold=False)
        receives = deletes = math.ceil(len(bodies) / AWS_MAX_BATCH_ENTRIES)
        total["sqs"] += handler["sqs"] + receives + deletes
        total["dynamodb"] += handler["dynamodb"]
    return total


class RequestsBench:
    def __init__(self, cloud: LocalCloud, quick: bool) -> None:
        self.cloud = cloud
        self.quick = quick
        self.metrics: list[Metric] = []
        self.notes: list[str] = []
        self.pipeline = OrderPipeline(cloud, say)
        self.logical_ids = {
            r["PhysicalResourceId"]: r["LogicalResourceId"]
            for r in cloud.client("cloudformation").describe_stack_resources(StackName="AsyncStack")[
                "StackResources"
            ]
            if r.get("ResourceType") == "AWS::Lambda::Function"
        }

    def add(self, name: str, value: float, unit: str, baseline: str, baseline_value: float) -> None:
        self.metrics.append(Metric(
            name=f"{GROUP}.{name}", value=value, unit=unit, baseline=baseline, baseline_value=baseline_value,
            ratio=ratio(value, baseline_value), command=command(GROUP, quick=self.quick),
        ))  # fmt: skip

    @contextmanager
    def metered(self) -> Iterator[tuple[Meter, dict[str, tuple[int, float]]]]:
        """Count requests and function work inside the block; ``functions`` is filled at its end."""
        stats = self.cloud.runtime.functions
        before = {arn: len(f.stats.durations_ms) for arn, f in stats.items()}
        meter = Meter()
        functions: dict[str, tuple[int, float]] = {}
        with self.cloud.request_hook(meter):
            yield meter, functions
        for arn, function in stats.items():
            durations = function.stats.durations_ms[before.get(arn, 0) :]
            name = self.logical_ids.get(arn.rsplit(":", 1)[-1], arn)
            if durations:
                functions[name] = (len(durations), sum(durations) / len(durations))

    def measure_pipeline(self, published: Published, publish: Callable[[Published], None]) -> Measured:
        with self.metered() as (meter, functions):
            publish(published)
            self.cloud.wait_until(self.cloud.idle, 600, "the pipeline to drain", poll=0.2)
        return Measured(meter, len(published.all), functions)

    def publish_singly(self, published: Published) -> None:
        sns = self.cloud.client("sns")
        for message in published.all:
            sns.publish(
                TopicArn=self.pipeline.outputs["OrdersTopicArn"], Message=message.body,
                MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in message.attributes.items()},
            )  # fmt: skip

    @contextmanager
    def naive_mappings(self) -> Iterator[None]:
        lambda_ = self.cloud.client("lambda")
        saved = {}
        for consumer in self.pipeline.consumers:
            mapping = lambda_.get_event_source_mapping(UUID=consumer.mapping_uuid)
            saved[consumer.mapping_uuid] = {
                "BatchSize": mapping["BatchSize"],
                "MaximumBatchingWindowInSeconds": mapping.get("MaximumBatchingWindowInSeconds", 0),
            }
            lambda_.update_event_source_mapping(UUID=consumer.mapping_uuid, **NAIVE)
        try:
            yield
        finally:
            for uuid_, settings in saved.items():
                lambda_.update_event_source_mapping(UUID=uuid_, **settings)

    def saga(self, executions: int) -> Measured:
        sfn = self.cloud.client("stepfunctions")
        arn = self.pipeline.outputs["OrderWorkflowArn"]
        transitions = 0
        with self.metered() as (meter, functions):
            for i in range(executions):
                order = {**SAGA_INPUT, "order_id": f"ord-bench-{uuid.uuid4().hex[:8]}-{i}"}
                started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(order))
                described = finished_execution(self.cloud, started["executionArn"], timeout=120, poll=0.2)
                if described["status"] != "SUCCEEDED":
                    raise RuntimeError(f"the saga ended {described['status']}: {described.get('error')}")
                events = history(self.cloud, started["executionArn"])
                transitions += sum(e["type"].endswith("StateEntered") for e in events)
        return Measured(meter, executions, functions, transitions)

    def compare(self, stack: Measured, naive: Measured, minimum: dict[str, int], events: int) -> None:
        served = stack.meter.by_service()
        naive_served = naive.meter.by_service()
        for service in (*SERVICES, "total"):
            value = sum(served[s] for s in SERVICES) if service == "total" else served[service]
            floor = sum(minimum.values()) if service == "total" else minimum[service]
            self.add(
                f"stack.{service}_per_event", value / events, "requests/event",
                "the design's theoretical minimum: PublishBatch of 10; per consumer queue one ReceiveMessage and"
                " one DeleteMessageBatch per 10 messages; the handlers' minimum (api_calls group)", floor / events,
            )  # fmt: skip
            naive_value = (
                sum(naive_served[s] for s in SERVICES) if service == "total" else naive_served[service]
            )
            self.add(
                f"naive.{service}_per_event", naive_value / events, "requests/event",
                "the stack as deployed, same events, same run (naive: batch size 1, no batching window, one"
                " Publish per event)", value / events,
            )  # fmt: skip
        total = sum(served[s] for s in SERVICES) / sum(minimum.values())
        self.notes.append(
            f"{GROUP}: the stack's total is {total:.3f}x the minimum (target <= {WITHIN_MINIMUM:.2f}x): "
            + ("met" if total <= WITHIN_MINIMUM else "NOT met")
        )
        for label, measured in (("stack", stack), ("naive", naive)):
            self.notes.append(
                f"{GROUP}: {label}, {events} events: "
                + ", ".join(f"{s}.{op} {n}" for (s, op), n in sorted(measured.meter.requests.items()))
            )

    def write_profile(self, stack: Measured, naive: Measured, saga: Measured, path: Path) -> None:
        profile = {
            "measured_on": datetime.now(UTC).date().isoformat(),
            "command": command(GROUP, quick=self.quick),
            "note": "Measured on the local cloud: request counts are exact; durations are this machine's, "
            "not Lambda's (treat GB-seconds as an estimate).",
            "workloads": {
                "orders_pipeline": {
                    "unit": "order.created event published to the orders topic",
                    "configurations": {
                        "stack": stack.profile("the stack as deployed: PublishBatch, batches of 10/10/100"),
                        "naive": naive.profile("batch size 1, no batching window, one Publish per event"),
                    },
                },
                "order_saga": {
                    "unit": "order saga execution",
                    "configurations": {"stack": saga.profile("charge, reserve, confirm: the success path")},
                },
            },
        }
        path.write_text(json.dumps(profile, indent=2) + "\n", encoding="utf-8")
        self.notes.append(f"{GROUP}: wrote the cost profile to {path}")


def run(*, quick: bool = False, profile_path: Path = MEASURED_PROFILE) -> tuple[list[Metric], list[str]]:
    events = 200 if quick else 600
    with (
        tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp,
        LocalCloud(port=free_port(), api_port=None, workdir=Path(tmp) / "cloud") as cloud,
    ):
        say("deploying the stack with the CDK CLI ...")
        cloud.deploy()
        bench = RequestsBench(cloud, quick)
        inventory = InventoryRepository(
            bench.pipeline.outputs["InventoryTableName"], client=cloud.client("dynamodb")
        )
        for sku in SKUS:  # no order refused for stock: refusals take another path
            inventory.put_stock(sku, 10**6)
        run_id = uuid.uuid4().hex[:6]
        stack_events = build_events(events, 0.0, 0.0, prefix=f"s{run_id}-")
        say(f"{events} events through the stack as deployed ...")
        stack = bench.measure_pipeline(stack_events, bench.pipeline.publish)
        say(f"{events} events through the naive configuration ...")
        with bench.naive_mappings():
            naive = bench.measure_pipeline(
                build_events(events, 0.0, 0.0, prefix=f"n{run_id}-"), bench.publish_singly
            )
        say("order sagas ...")
        saga = bench.saga(3 if quick else 10)
        bench.compare(stack, naive, pipeline_minimum(bench.pipeline.consumers, stack_events), events)
        bench.write_profile(stack, naive, saga, profile_path)
        return bench.metrics, bench.notes
