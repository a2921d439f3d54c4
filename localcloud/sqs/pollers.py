"""SQS event source mappings, polled with Lambda's semantics instead of moto's synchronous trigger.

Up to ``BatchSize`` messages gathered for at most ``MaximumBatchingWindowInSeconds``, one
invocation per batch, and as many concurrent batches as ``ScalingConfig.MaximumConcurrency``
(and the function's concurrency) allow. With ``ReportBatchItemFailures`` only the records the
function did not report as failed are deleted; without it, any error fails the whole batch.
Undeleted messages reappear after their visibility timeout, their receive count grows, and the
queue's redrive policy moves them to the DLQ. Mappings are re-read from moto continuously, so
enabling, disabling, creating and deleting them takes effect as it does in Lambda.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcloud.awslambda.runtime import InvocationError, LocalRuntime, Throttled, lambda_function
from localcloud.poller_sets import Backoff, Poller, PollerSet
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION, local_client
from localcloud.sqs import filters
from localcloud.sqs.records import RECEIVE_ATTRIBUTES, failed_message_ids, lambda_event

DEFAULT_MAXIMUM_CONCURRENCY = 4
IDLE_LONG_POLL_SECONDS = 20  # what Lambda's SQS pollers wait for on an empty queue


@dataclass(frozen=True)
class MappingView:
    """An event source mapping as moto holds it now."""

    uuid: str
    function_arn: str
    queue_arn: str
    enabled: bool
    batch_size: int
    batching_window: float
    maximum_concurrency: int
    report_batch_item_failures: bool
    filters: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, esm: Any) -> MappingView:
        scaling = esm.scaling_config or {}
        return cls(
            uuid=esm.uuid,
            function_arn=esm.function_arn,
            queue_arn=esm.event_source_arn,
            enabled=bool(esm.enabled),
            batch_size=int(esm.batch_size or 10),
            batching_window=float(esm.max_batch_window or 0),
            maximum_concurrency=int(scaling.get("MaximumConcurrency") or DEFAULT_MAXIMUM_CONCURRENCY),
            report_batch_item_failures="ReportBatchItemFailures" in (esm.function_response_types or []),
            filters=tuple(filters.patterns(esm.filter_criteria)),
        )


def sqs_mappings() -> dict[str, MappingView]:
    from moto.awslambda.models import lambda_backends

    with MOTO_LOCK:
        mappings = lambda_backends[ACCOUNT][REGION]._event_source_mappings.values()
        return {m.uuid: MappingView.of(m) for m in mappings if ":sqs:" in m.event_source_arn}


@dataclass
class PollerStats:
    batches: int = 0
    records_succeeded: int = 0
    records_failed: int = 0
    records_filtered_out: int = 0


class SqsPoller:
    """One poller thread of a mapping: gathers a batch, invokes, deletes what succeeded."""

    def __init__(
        self, uuid: str, runtime: LocalRuntime, reader: Callable[[], Any], stop: threading.Event, lookup: Any
    ) -> None:
        """``reader()``: the client that reads and deletes, as the function's role (asked again for each
        use: the role's credentials are renewed); ``lookup`` finds the queue's URL (Lambda knows its
        queue by ARN: its role needs no ``sqs:GetQueueUrl``)."""
        self.uuid = uuid
        self.runtime = runtime
        self.reader = reader
        self.lookup = lookup
        self.stop = stop
        self.busy = False
        self.stats = PollerStats()
        self.queue_url: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"poller-{uuid[:8]}", daemon=True)

    def _mapping(self) -> MappingView | None:
        return sqs_mappings().get(self.uuid)

    def _gather(self, mapping: MappingView, url: str) -> list[dict[str, Any]]:
        """Up to batch_size messages, collected until the batching window closes once the first arrives.

        Like Lambda's pollers: a 20-second long poll while the queue is empty, then long polls for
        the rest of the window, each answered as soon as a message is there.
        """
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < mapping.batch_size and not self.stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            messages += (
                self.reader()
                .receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, mapping.batch_size - len(messages)),
                    WaitTimeSeconds=IDLE_LONG_POLL_SECONDS if remaining is None else round(remaining, 3),
                    AttributeNames=RECEIVE_ATTRIBUTES,
                    MessageAttributeNames=["All"],
                )
                .get("Messages", [])
            )
            if not messages:
                return messages
            if deadline is None:
                deadline = time.monotonic() + mapping.batching_window
        return messages

    def _release(self, url: str, messages: list[dict[str, Any]]) -> None:
        """Make messages visible again at once (the mapping was disabled while they were gathered)."""
        for start in range(0, len(messages), 10):
            self.reader().change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages[start : start + 10])
                ],
            )

    def _run(self) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                mapping = self._mapping()
                if mapping is None:
                    return
                if not mapping.enabled:
                    self.stop.wait(0.5)
                    continue
                if self.queue_url is None:
                    self.queue_url = self.lookup.get_queue_url(QueueName=mapping.queue_arn.split(":")[-1])[
                        "QueueUrl"
                    ]
                messages = self._gather(mapping, self.queue_url)
                backoff.reset()
                if not messages:
                    continue
                current = self._mapping()
                if current is None or not current.enabled:  # disabled or deleted meanwhile: no invocation
                    self._release(self.queue_url, messages)
                    continue
                self.busy = True
                messages = self._filter(current, self.queue_url, messages)
                if messages:
                    self._deliver(current, self.queue_url, messages)
            except Exception as error:  # Lambda's pollers retry; undeleted messages come back by themselves
                if self.stop.is_set():  # the local cloud is closing under a long poll
                    return
                print(
                    f"[localcloud] poller {self.uuid[:8]} error, retrying in {backoff.seconds:g} s: {error!r}"
                )
                backoff.wait(self.stop)
                continue
            finally:
                self.busy = False

    def _filter(self, mapping: MappingView, url: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages the mapping's filters pass; the others are deleted, as Lambda deletes them."""
        if not mapping.filters:
            return messages
        passed: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for message in messages:  # one pass: a batch may hold 10,000 messages
            (passed if filters.passes(message["Body"], mapping.filters) else rejected).append(message)
        self._delete(url, rejected)
        self.stats.records_filtered_out += len(rejected)
        return passed

    def _delete(self, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.reader().delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def _deliver(self, mapping: MappingView, url: str, messages: list[dict[str, Any]]) -> None:
        event = lambda_event(messages, queue_arn=mapping.queue_arn, region=REGION)
        failed: set[str] | None
        try:
            result = self.runtime.invoke(mapping.function_arn, event, wait=60.0)
        except (InvocationError, Throttled):
            failed = None
        else:
            # Without ReportBatchItemFailures Lambda ignores what the function returns.
            failed = failed_message_ids(result) if mapping.report_batch_item_failures else set()
        self.stats.batches += 1
        if failed is None:  # the whole batch failed: nothing is deleted
            self.stats.records_failed += len(messages)
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(url, done)
        self.stats.records_succeeded += len(done)
        self.stats.records_failed += len(messages) - len(done)


class EventSourceMappings(PollerSet[str]):
    """Keeps one set of pollers per mapping moto holds, sized by the mapping's maximum concurrency."""

    name = "event-source-mappings"

    def __init__(self, runtime: LocalRuntime, role_client: Callable[[str, str], Any] | None = None) -> None:
        """``role_client(role ARN, function name)``: an SQS client acting as the function's execution
        role, which Lambda reads the queue with (its role needs ``sqs:ReceiveMessage`` and the like);
        without it, the local cloud's own client reads."""
        super().__init__()
        self.runtime = runtime
        self.role_client = role_client
        self.sqs = local_client("sqs", runtime.endpoint, validate=False)

    def wanted(self) -> dict[str, Any]:
        return sqs_mappings()

    def create(self, key: str, spec: Any, stop: threading.Event) -> list[Poller]:
        function_limit = self.runtime.function(spec.function_arn).limit
        role_client, function = self.role_client, lambda_function(spec.function_arn)

        def reader() -> Any:
            return self.sqs if role_client is None else role_client(function.role, function.function_name)

        return [
            SqsPoller(key, self.runtime, reader, stop, lookup=self.sqs)
            for _ in range(max(1, min(spec.maximum_concurrency, function_limit)))
        ]

    def stats(self) -> dict[str, PollerStats]:
        totals: dict[str, PollerStats] = {}
        for uuid, (_, pollers) in self.pollers.items():
            total = totals.setdefault(uuid, PollerStats())
            for poller in pollers:
                total.batches += poller.stats.batches
                total.records_succeeded += poller.stats.records_succeeded
                total.records_failed += poller.stats.records_failed
        return totals
