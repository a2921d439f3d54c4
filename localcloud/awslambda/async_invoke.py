"""Asynchronous invocations (InvocationType Event, SNS, EventBridge, the scheduler), as Lambda runs them.

Lambda queues the event, retries a failed invocation twice (one minute, then two minutes later,
measured on the local clock), drops events older than the maximum event age, and sends an
invocation record to the on-success or on-failure destination of the function's event invoke
config (or, failing that, the event to the function's dead-letter queue).
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from localcloud.awslambda.runtime import InvocationError, LocalRuntime, Throttled, lambda_function
from localcloud.clock import Clock
from localcloud.server import MOTO_LOCK

RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))
DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE = timedelta(hours=6)


@dataclass
class AsyncEvent:
    function_arn: str
    payload: Any
    received_at: datetime
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0


@dataclass
class AsyncStats:
    accepted: int = 0
    retried: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    destinations: int = 0


def _invoke_config(function_arn: str) -> dict[str, Any]:
    with MOTO_LOCK:
        configs = lambda_function(function_arn).event_invoke_config
        return dict(configs[-1].config) if configs else {}


class AsyncInvoker:
    """The queue in front of every function's asynchronous invocations."""

    def __init__(
        self, *, runtime: LocalRuntime, clock: Clock, client: Callable[[str], Any], workers: int = 4
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.client = client
        self.stats = AsyncStats()
        self.ready: queue.Queue[AsyncEvent | None] = queue.Queue()
        self.waiting: list[tuple[datetime, int, AsyncEvent]] = []
        self.sequence = itertools.count()
        self.lock = threading.Lock()
        self.in_progress = 0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, daemon=True, name=f"async-{i}") for i in range(workers)
        ]
        self.threads.append(threading.Thread(target=self._release_due, daemon=True, name="async-retries"))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def submit(self, function_arn: str, payload: Any, *, request_id: str | None = None) -> str:
        event = AsyncEvent(
            function_arn, payload, received_at=self.clock.now(), request_id=request_id or str(uuid.uuid4())
        )
        with self.lock:
            self.stats.accepted += 1
        self.ready.put(event)
        return event.request_id

    @property
    def pending(self) -> int:
        with self.lock:
            return self.ready.qsize() + len(self.waiting) + self.in_progress

    def _later(self, event: AsyncEvent, delay: timedelta) -> None:
        with self.lock:
            heapq.heappush(self.waiting, (self.clock.now() + delay, next(self.sequence), event))

    def _release_due(self) -> None:
        while not self.stop.is_set():
            now = self.clock.now()
            with self.lock:
                while self.waiting and self.waiting[0][0] <= now:
                    self.ready.put(heapq.heappop(self.waiting)[2])
            self.clock.wait(0.1)

    def _work(self) -> None:
        while True:
            event = self.ready.get()
            if event is None:
                return
            with self.lock:
                self.in_progress += 1
            try:
                self._attempt(event)
            except Exception as error:  # an unreachable destination must not stop the queue
                print(f"[localcloud] async invocation of {event.function_arn} failed: {error!r}")
            finally:
                with self.lock:
                    self.in_progress -= 1

    def _attempt(self, event: AsyncEvent) -> None:
        config = _invoke_config(event.function_arn)
        max_age = timedelta(seconds=config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE.total_seconds()))
        if self.clock.now() - event.received_at > max_age:
            with self.lock:
                self.stats.expired += 1
            self._deliver(
                event, config, "EventAgeExceeded", error=InvocationError("EventAgeExceeded", "too old")
            )
            return
        try:
            result = self.runtime.invoke(
                event.function_arn, event.payload, wait=5.0, request_id=event.request_id
            )
        except Throttled:  # Lambda keeps throttled events and tries again
            self._later(event, timedelta(seconds=1))
            return
        except InvocationError as error:
            event.attempts += 1
            retries = int(config.get("MaximumRetryAttempts", DEFAULT_RETRIES))
            if event.attempts <= retries:
                with self.lock:
                    self.stats.retried += 1
                self._later(event, RETRY_DELAYS[min(event.attempts, len(RETRY_DELAYS)) - 1])
                return
            with self.lock:
                self.stats.failed += 1
            self._deliver(event, config, "RetriesExhausted", error=error)
            return
        event.attempts += 1
        with self.lock:
            self.stats.succeeded += 1
        self._deliver(event, config, "Success", result=result)

    def _deliver(
        self, event: AsyncEvent, config: dict[str, Any], condition: str, *,
        error: InvocationError | None = None, result: Any = None,
    ) -> None:  # fmt: skip
        destinations = config.get("DestinationConfig") or {}
        key = "OnSuccess" if error is None else "OnFailure"
        target = (destinations.get(key) or {}).get("Destination")
        if target:
            record = {
                "version": "1.0",
                "timestamp": self.clock.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "requestContext": {
                    "requestId": event.request_id,
                    "functionArn": f"{event.function_arn}:$LATEST",
                    "condition": condition,
                    "approximateInvokeCount": event.attempts,
                },
                "requestPayload": event.payload,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"}
                | ({"functionError": "Unhandled"} if error else {}),
                "responsePayload": error.payload(event.request_id) if error else result,
            }
            send_to(
                self.client,
                target,
                json.dumps(record, default=str),
                detail_type=f"Lambda Function Invocation Result - {'Success' if error is None else 'Failure'}",
            )
        elif error is not None:
            with MOTO_LOCK:
                dead_letter = getattr(lambda_function(event.function_arn), "dead_letter_target", None)
            if not dead_letter:
                return
            attributes = {
                "RequestID": event.request_id, "ErrorCode": "200", "ErrorMessage": error.message[:256]
            }  # fmt: skip
            send_to(self.client, dead_letter, json.dumps(event.payload, default=str), attributes=attributes)
        else:
            return
        with self.lock:
            self.stats.destinations += 1

    def close(self) -> None:
        self.stop.set()
        for _ in self.threads:
            self.ready.put(None)
        for thread in self.threads:
            thread.join(timeout=2)


def send_to(
    client: Callable[[str], Any], arn: str, body: str, *, attributes: dict[str, str] | None = None,
    detail_type: str = "Lambda Function Invocation Result",
) -> None:  # fmt: skip
    """Deliver ``body`` to an SQS queue, SNS topic, Lambda function or event bus, by ARN."""
    service = arn.split(":")[2]
    message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
    if service == "sqs":
        sqs = client("sqs")
        url = sqs.get_queue_url(QueueName=arn.rsplit(":", maxsplit=1)[-1])["QueueUrl"]
        extra = (
            {"MessageGroupId": "destination", "MessageDeduplicationId": str(uuid.uuid4())}
            if arn.endswith(".fifo")
            else {}
        )
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=message_attributes, **extra)
    elif service == "sns":
        client("sns").publish(TopicArn=arn, Message=body, MessageAttributes=message_attributes)
    elif service == "lambda":
        client("lambda").invoke(FunctionName=arn, InvocationType="Event", Payload=body.encode())
    elif service == "events":
        client("events").put_events(
            Entries=[{"EventBusName": arn, "Source": "lambda", "DetailType": detail_type, "Detail": body}]
        )
    else:
        raise ValueError(f"unsupported destination {arn}")
