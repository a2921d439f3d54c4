"""Fault injection at the local cloud's AWS endpoint, for chaos runs.

Nothing here is in a deployed handler: a ``FaultInjector`` is a request hook that the local cloud
runs only when it is installed explicitly (``LocalCloud.request_hook(injector)``, as the chaos run
does). It disturbs the DynamoDB requests the functions make, the way AWS can:

* transient failures: the business writes of chosen orders fail (500 InternalServerError, or the
  rows handed back as ``UnprocessedItems`` in a BatchWriteItem) as many times in a row as the
  caller tries, so the handler sees the error and the record goes back to SQS;
* throttling: a share of all handler requests is answered ``ThrottlingException``;
* crashes: at chosen writes the writing function's busy environments are killed mid-batch;
* timeouts: at chosen writes the request is held past the function's timeout (the runtime kills
  the environment) and then dropped, so it never takes effect.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncstack.runtime.aws import SDK_MAX_ATTEMPTS
from localcloud.awslambda.runtime import LocalRuntime
from localcloud.server import HookResponse, HookRewrite
from shared.analytics import UNPROCESSED_ATTEMPTS

# The operations handlers make; the chaos run's own reads (Scan) are never disturbed.
HANDLER_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
)
WRITES = frozenset({"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem"})
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


@dataclass(frozen=True)
class FaultPlan:
    """What to inject. ``transient`` names the orders (tokens found in the write requests) whose
    business write to each watched table fails once per consumer; ``writers`` maps each watched
    table to the function that writes it (whose environments a crash or a timeout hits)."""

    writers: Mapping[str, str]
    token_pattern: str  # a regular expression matching the tokens (order ids) in a request body
    transient: frozenset[str] = frozenset()
    throttle_share: float = 0.0
    # Single-item business writes (counted over all watched tables) at which to crash or time out.
    kill_at: frozenset[int] = frozenset()
    timeout_at: frozenset[int] = frozenset()
    seed: int = 7


@dataclass
class FaultLog:
    """What was injected, for the chaos run's report and invariants."""

    transient_requests: int = 0
    transient_hit: dict[str, set[str]] = field(default_factory=dict)  # table -> tokens that failed
    throttled: int = 0
    environments_killed: int = 0
    kills: int = 0
    timeouts: int = 0
    # Monotonic time after which no invocation cut short by a crash or a timeout holds an unexpired
    # in-progress idempotency record (a redelivery before then would be refused as in progress).
    settled_at: float = float("-inf")


class FaultInjector:
    """A request hook carrying out a ``FaultPlan``; thread-safe (the server serves requests in threads)."""

    def __init__(self, plan: FaultPlan, runtime: LocalRuntime) -> None:
        self.plan = plan
        self.runtime = runtime
        self.log = FaultLog()
        self._rng = random.Random(plan.seed)
        self._tokens = re.compile(plan.token_pattern)
        self._lock = threading.Lock()
        self._writes = 0
        # (table, token) -> failures still to inject
        self._budget: Counter[tuple[str, str]] = Counter()
        self._spent: set[tuple[str, str]] = set()

    def __call__(
        self, call: tuple[str, str], environ: dict[str, Any], body: bytes
    ) -> HookResponse | HookRewrite | None:
        service, operation = call
        if service != "dynamodb" or operation not in HANDLER_OPERATIONS:
            return None
        request = json.loads(body or b"{}")
        watched = [t for t in _tables(operation, request) if t in self.plan.writers]
        with self._lock:
            if self._rng.random() < self.plan.throttle_share:
                self.log.throttled += 1
                return dynamodb_error(
                    400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."
                )
            if not watched or operation not in WRITES:
                return None
            if operation == "BatchWriteItem":
                return self._unprocessed(watched[0], request)
            if self._take(watched[0], self._chosen(body), SDK_MAX_ATTEMPTS):
                return dynamodb_error(500, "InternalServerError", "Internal server error (injected)")
            self._writes += 1
            number = self._writes
        return self._disrupt(watched[0], number)

    def _disrupt(self, table: str, write_number: int) -> HookResponse | None:
        if write_number in self.plan.kill_at:
            self._kill(table)
        elif write_number in self.plan.timeout_at:
            return self._time_out(table)
        return None

    def _settle_after(self, seconds: float) -> None:
        self.log.settled_at = max(self.log.settled_at, time.monotonic() + seconds + 1)

    def _chosen(self, text: bytes | str) -> set[str]:
        """The tokens of transiently failing orders that ``text`` names."""
        found = self._tokens.findall(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
        return set(found) & self.plan.transient

    def _take(self, table: str, tokens: Iterable[str], attempts: int) -> set[str]:
        """The tokens of this request still owed a failure; charges one failure to each."""
        hit = set()
        for token in tokens:
            key = (table, token)
            if key not in self._spent:
                self._spent.add(key)
                self._budget[key] = attempts
            if self._budget[key] > 0:
                self._budget[key] -= 1
                hit.add(token)
        if hit:
            self.log.transient_requests += 1
            self.log.transient_hit.setdefault(table, set()).update(hit)
        return hit

    def _unprocessed(self, table: str, request: dict[str, Any]) -> HookResponse | HookRewrite | None:
        """A bulk write: the rows of chosen orders come back unprocessed, the others are written."""
        rows = request["RequestItems"][table]
        failing = self._take(table, self._chosen(json.dumps(rows)), UNPROCESSED_ATTEMPTS)
        if not failing:
            return None
        kept: list[Any] = []
        refused: list[Any] = []
        for row in rows:
            (refused if self._chosen(json.dumps(row)) & failing else kept).append(row)
        if not kept:
            return HookResponse(200, {"UnprocessedItems": {table: refused}})

        def amend(answer: dict[str, Any]) -> dict[str, Any]:
            unprocessed = answer.setdefault("UnprocessedItems", {})
            unprocessed[table] = unprocessed.get(table, []) + refused
            return answer

        rewritten = {**request, "RequestItems": {**request["RequestItems"], table: kept}}
        return HookRewrite(json.dumps(rewritten).encode(), amend)

    def _kill(self, table: str) -> None:
        function = self.runtime.function(self.plan.writers[table])
        killed = function.kill_running()
        with self._lock:
            self.log.kills += 1
            self.log.environments_killed += killed
            self._settle_after(function.config.timeout)

    def _time_out(self, table: str) -> HookResponse:
        """Hold the request until the runtime has killed the caller for its timeout, then drop it."""
        function = self.runtime.function(self.plan.writers[table])
        with self._lock:
            self.log.timeouts += 1
            self._settle_after(function.config.timeout)
        time.sleep(function.config.timeout + 1)
        return dynamodb_error(500, "InternalServerError", "dropped after the caller timed out (injected)")


def _tables(operation: str, request: dict[str, Any]) -> list[str]:
    if operation == "BatchWriteItem":
        return list(request.get("RequestItems", {}))
    if operation == "TransactWriteItems":
        return [next(iter(item.values()))["TableName"] for item in request.get("TransactItems", [])]
    return [request["TableName"]] if "TableName" in request else []


def dynamodb_error(status: int, code: str, message: str) -> HookResponse:
    """An error answer in DynamoDB's JSON protocol, for a request hook to return."""
    return HookResponse(status, {"__type": _ERROR_PREFIX + code, "message": message})
