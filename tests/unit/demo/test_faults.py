"""The fault injector decides per request: which to fail, throttle, rewrite, crash or hold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from asyncstack.runtime.aws import SDK_MAX_ATTEMPTS
from demo.chaos_patterns import FaultTarget, PatternFaults
from demo.faults import FaultInjector, FaultPlan
from localcloud.server import HookResponse, HookRewrite
from shared.analytics import UNPROCESSED_ATTEMPTS

pytestmark = pytest.mark.unit

INVENTORY, ANALYTICS = "inventory-table", "analytics-table"
TOKENS = r"run1-ord-\d+"


@dataclass
class FakeConfig:
    timeout: float = 0.0


@dataclass
class FakeFunction:
    running: int = 2
    killed: int = 0
    config: FakeConfig = field(default_factory=FakeConfig)

    def kill_running(self) -> int:
        self.killed += 1
        return self.running


@dataclass
class FakeRuntime:
    functions: dict[str, FakeFunction] = field(default_factory=dict)

    def function(self, arn: str) -> FakeFunction:
        return self.functions.setdefault(arn, FakeFunction())


def _injector(**plan: Any) -> tuple[FaultInjector, FakeRuntime]:
    runtime = FakeRuntime()
    settings = {"writers": {INVENTORY: "fn-inventory", ANALYTICS: "fn-analytics"}, "token_pattern": TOKENS}
    return FaultInjector(FaultPlan(**(settings | plan)), runtime), runtime  # type: ignore[arg-type]


def _put(order_id: str, table: str = INVENTORY) -> bytes:
    return json.dumps({"TableName": table, "Item": {"pk": {"S": f"reservation#{order_id}"}}}).encode()


def _batch(*order_ids: str) -> dict[str, Any]:
    rows = [{"PutRequest": {"Item": {"order_id": {"S": o}}}} for o in order_ids]
    return {"RequestItems": {ANALYTICS: rows}}


def test_a_chosen_order_fails_as_many_times_as_the_sdk_tries_then_goes_through() -> None:
    # Given an injector choosing order run1-ord-7 to fail transiently
    injector, _ = _injector(transient=frozenset({"run1-ord-7"}))
    # When its write is tried again and again
    answers = [injector(("dynamodb", "PutItem"), {}, _put("run1-ord-7")) for _ in range(SDK_MAX_ATTEMPTS + 1)]
    # Then every SDK attempt of the first call fails with a 500, and the next call is served
    assert [a.status if isinstance(a, HookResponse) else None for a in answers] == [
        500
    ] * SDK_MAX_ATTEMPTS + [None]
    assert injector.log.transient_hit == {INVENTORY: {"run1-ord-7"}}
    # And an order nobody chose is never failed
    assert injector(("dynamodb", "PutItem"), {}, _put("run1-ord-8")) is None


def test_a_bulk_write_hands_back_only_the_chosen_rows_as_unprocessed() -> None:
    # Given a batch of three rows, one of a chosen order
    injector, _ = _injector(transient=frozenset({"run1-ord-2"}))
    request = _batch("run1-ord-1", "run1-ord-2", "run1-ord-3")
    # When it is written
    answer = injector(("dynamodb", "BatchWriteItem"), {}, json.dumps(request).encode())
    # Then moto is asked to write the two others, and the chosen row comes back unprocessed
    assert isinstance(answer, HookRewrite)
    kept = json.loads(answer.body)["RequestItems"][ANALYTICS]
    assert [row["PutRequest"]["Item"]["order_id"]["S"] for row in kept] == ["run1-ord-1", "run1-ord-3"]
    amended = answer.amend({"UnprocessedItems": {}})
    assert amended["UnprocessedItems"][ANALYTICS] == [request["RequestItems"][ANALYTICS][1]]


def test_a_bulk_write_of_chosen_rows_only_is_answered_without_moto_until_the_sink_gives_up() -> None:
    injector, _ = _injector(transient=frozenset({"run1-ord-2"}))
    body = json.dumps(_batch("run1-ord-2")).encode()
    answers = [injector(("dynamodb", "BatchWriteItem"), {}, body) for _ in range(UNPROCESSED_ATTEMPTS + 1)]
    assert all(isinstance(a, HookResponse) and a.status == 200 for a in answers[:UNPROCESSED_ATTEMPTS])
    assert answers[-1] is None


def test_throttling_hits_about_the_planned_share_of_handler_requests_only() -> None:
    # Given a 10% throttle share
    injector, _ = _injector(throttle_share=0.10)
    # When 2,000 handler reads and 100 of the chaos run's own scans arrive
    answers = [injector(("dynamodb", "GetItem"), {}, b'{"TableName": "other"}') for _ in range(2000)]
    scans = [injector(("dynamodb", "Scan"), {}, b'{"TableName": "other"}') for _ in range(100)]
    # Then about 200 reads are throttled with ThrottlingException, and no scan
    throttled = [a for a in answers if isinstance(a, HookResponse)]
    assert 140 <= len(throttled) <= 260
    assert {a.body["__type"].rsplit("#", 1)[-1] for a in throttled} == {"ThrottlingException"}
    assert injector.log.throttled == len(throttled)
    assert scans == [None] * 100


def test_a_crash_kills_the_writers_busy_environments_at_the_planned_write() -> None:
    # Given a crash planned at the third single-item write
    injector, runtime = _injector(kill_at=frozenset({3}))
    # When four writes arrive
    for i in range(4):
        assert injector(("dynamodb", "PutItem"), {}, _put(f"run1-ord-{i}")) is None
    # Then the inventory writer's running environments were killed once, and the run must wait
    # for their in-progress records to expire before making their messages visible again
    assert runtime.function("fn-inventory").killed == 1
    assert (injector.log.kills, injector.log.environments_killed) == (1, 2)
    assert injector.log.settled_at > float("-inf")


def test_a_timed_out_write_is_dropped_instead_of_served() -> None:
    injector, _ = _injector(timeout_at=frozenset({1}))
    answer = injector(("dynamodb", "PutItem"), {}, _put("run1-ord-1"))
    assert isinstance(answer, HookResponse) and answer.status == 500
    assert injector.log.timeouts == 1


def test_each_pattern_target_numbers_its_own_units_so_its_every_nth_fails_whatever_the_others_see() -> None:
    # Given two pattern targets, the second failing every 2nd of its units
    runtime = FakeRuntime()
    jobs = FaultTarget("jobs", "fn-jobs", "jobs-table", re.compile("job#"), re.compile(r"job#\d+"))
    sagas = FaultTarget(
        "sagas", "fn-sagas", INVENTORY, re.compile("reservation#"), re.compile(r"saga-\d+"), transient_every=2
    )
    faults = PatternFaults([jobs, sagas], runtime)  # type: ignore[arg-type]
    call = ("dynamodb", "PutItem")

    def write(table: str, key: str) -> HookResponse | None:
        return faults(call, {}, json.dumps({"TableName": table, "Item": {"pk": {"S": key}}}).encode())

    # When units of the other target come between the sagas' units
    write("jobs-table", "job#1")
    assert write(INVENTORY, "reservation#saga-1") is None
    write("jobs-table", "job#2")
    # Then the second saga is the one that fails, as many times as the SDK tries
    answers = [write(INVENTORY, "reservation#saga-2") for _ in range(SDK_MAX_ATTEMPTS)]
    assert all(isinstance(a, HookResponse) and a.status == 500 for a in answers)
    assert write(INVENTORY, "reservation#saga-2") is None
    assert faults.log.transient == {"sagas": 1}
