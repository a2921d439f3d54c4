"""Event source mappings on streams (DynamoDB Streams, Kinesis), polled as Lambda polls them.

One poller per mapping and shard reads the shard in order from the mapping's starting position
(``TRIM_HORIZON``, ``LATEST`` or ``AT_TIMESTAMP``), gathers up to ``BatchSize`` records within
``MaximumBatchingWindowInSeconds``, applies ``FilterCriteria`` (records no filter matches are skipped),
and invokes the function with ``{"Records": [...]}``, one batch at a time per shard, so records of a
shard arrive in order. A batch that fails is retried with backoff until it succeeds; with
``BisectBatchOnFunctionError`` it is split in two instead, down to single records (splitting does
not count as a retry). After
``MaximumRetryAttempts`` retries, or once its oldest record is older than
``MaximumRecordAgeInSeconds`` (-1, the default for both: until the record expires), the batch is
skipped and, with an ``OnFailure`` destination (SQS queue or SNS topic), described there as Lambda
describes it. With ``ReportBatchItemFailures`` a response naming ``batchItemFailures`` checkpoints
before the lowest sequence number it names and retries from there.

With ``ParallelizationFactor`` N, up to N batches of a shard run at once: records are spread over N
lanes by a hash of their partition key, so records with the same key still arrive in order; the
shard's position moves past a read once every lane is done with it.
The services' own parts (which records a shard holds, what a record looks like to the function) are
``StreamSource`` implementations in their folders (``localcloud/dynamodb/streams.py``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from localcloud.awslambda.runtime import InvocationError, LocalRuntime, Throttled, lambda_function
from localcloud.clock import Clock
from localcloud.poller_sets import Backoff, Poller, PollerSet
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION

IDLE_WAIT_SECONDS = 1.0  # a shard with nothing new is read again after this, or when written to
MAX_BACKOFF_SECONDS = 10.0
DISABLED_WAIT_SECONDS = 0.1  # how soon a disabled mapping's poller sees it enabled
CREATED_AT = "localcloud_created_at"  # set on moto's mappings when created (real time)


class Signal:
    """Tells waiting pollers that a stream was written to. Fired under moto's lock: waiters never
    hold it while they take moto's lock."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.generation = 0

    def fire(self) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def wait(self, since: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.generation != since, timeout)


@dataclass(frozen=True)
class StreamRecord:
    """One record of a shard: its place, its key, when it arrived (real time), and the function's view."""

    sequence: int
    partition_key: str
    arrived: float
    event: dict[str, Any]
    filter_document: dict[str, Any]  # what FilterCriteria patterns match against


class StreamSource(Protocol):
    """A stream service's side: the shards of a stream and their records, read under moto's lock."""

    batch_info_key: str  # "DDBStreamBatchInfo" or "KinesisBatchInfo" in on-failure records
    adds_identity: bool  # whether each record carries invokeIdentityArn (the function's role)
    read_action: str  # what the reader's role needs to read a shard ("kinesis:GetRecords")

    def handles(self, source_arn: str) -> bool: ...

    def shards(self, source_arn: str) -> list[str]: ...

    def records(self, source_arn: str, shard: str, after: int | None, limit: int) -> list[StreamRecord]: ...

    def last_sequence(self, source_arn: str, shard: str) -> int | None: ...


@dataclass(frozen=True)
class StreamMappingView:
    """What a stream poller reads from moto's event source mapping."""

    uuid: str
    function_arn: str
    source_arn: str
    enabled: bool
    batch_size: int
    batching_window: float
    starting_position: str
    starting_timestamp: float | None  # AT_TIMESTAMP's; for LATEST, when the mapping was created
    maximum_retry_attempts: int
    maximum_record_age: float
    bisect: bool
    report_batch_item_failures: bool
    on_failure: str | None
    filters: tuple[dict[str, Any], ...]
    parallelization_factor: int = 1
    role: str = ""  # the role that reads the stream: the function's execution role, a pipe's role

    @classmethod
    def of(cls, esm: Any) -> StreamMappingView:
        destination = ((esm.destination_config or {}).get("OnFailure") or {}).get("Destination")
        timestamp = esm.starting_position_timestamp
        if esm.starting_position == "LATEST":
            timestamp = getattr(esm, CREATED_AT, None)
        return cls(
            uuid=esm.uuid,
            function_arn=esm.function_arn,
            source_arn=esm.event_source_arn,
            enabled=bool(esm.enabled),
            batch_size=int(esm.batch_size or 100),
            batching_window=float(esm.max_batch_window or 0),
            starting_position=str(esm.starting_position or "TRIM_HORIZON"),
            starting_timestamp=None if timestamp is None else _epoch(timestamp),
            maximum_retry_attempts=int(-1 if esm.max_retry_attempts is None else esm.max_retry_attempts),
            maximum_record_age=float(-1 if esm.max_record_age is None else esm.max_record_age),
            bisect=bool(esm.bisect_on_error),
            report_batch_item_failures="ReportBatchItemFailures" in (esm.function_response_types or []),
            on_failure=destination,
            filters=tuple(json.loads(f["Pattern"]) for f in (esm.filter_criteria or {}).get("Filters") or []),
            parallelization_factor=max(1, int(esm.parallelization_factor or 1)),
            role=lambda_function(esm.function_arn).role,
        )


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def matches(document: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a record passes the mapping's filters (any of them; none: every record passes)."""
    from moto.events.models import EventPattern

    event: Any = dict(document)
    return not filters or any(EventPattern.load(json.dumps(p)).matches_event(event) for p in filters)


def lanes(records: Sequence[StreamRecord], factor: int, batch_size: int) -> list[list[_Batch]]:
    """The batches of each lane: records spread over ``factor`` lanes by partition key (one key, one
    lane, so its records stay in order), each lane cut into batches of at most ``batch_size``."""
    by_lane: dict[int, list[StreamRecord]] = {}
    for record in records:
        by_lane.setdefault(zlib.crc32(record.partition_key.encode()) % factor, []).append(record)
    return [
        [_Batch(lane[i : i + batch_size]) for i in range(0, len(lane), batch_size)]
        for _, lane in sorted(by_lane.items())
    ]


def batch_item_failure(result: Any, batch: Sequence[StreamRecord]) -> int | bool | None:
    """The index in ``batch`` to retry from, None if the batch succeeded, False if the response is
    not a valid partial batch response (the whole batch failed, as Lambda treats it)."""
    failures = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
    if not failures:
        return None
    positions = {str(record.sequence): index for index, record in enumerate(batch)}
    indexes = [positions.get(str((failure or {}).get("itemIdentifier"))) for failure in failures]
    if any(index is None for index in indexes):
        return False
    return min(i for i in indexes if i is not None)


@dataclass
class StreamPollerStats:
    batches: int = 0
    records_succeeded: int = 0
    records_failed: int = 0
    records_filtered_out: int = 0
    batches_sent_to_destination: int = 0


@dataclass
class _Batch:
    records: list[StreamRecord]
    attempts: int = 0  # failed invocations of these records (Lambda's approximateInvokeCount)
    retries: int = 0  # what MaximumRetryAttempts counts: splitting a batch is not a retry
    last_error: str = "Unhandled"


class ShardPoller:
    """The records of one shard, for one mapping, in order."""

    def __init__(
        self,
        mapping_uuid: str,
        shard: str,
        *,
        source: StreamSource,
        runtime: LocalRuntime,
        send: Callable[[str, dict[str, Any]], None],
        stop: threading.Event,
        written: Signal,
        view: Callable[[], StreamMappingView | None] | None = None,
        deliver: Callable[[StreamMappingView, list[dict[str, Any]]], Any] | None = None,
    ) -> None:
        """``view`` and ``deliver``: where the mapping's settings come from and what a batch is handed
        to (default: moto's event source mapping, and an invocation of its function with
        ``{"Records": [...]}``; EventBridge Pipes give their own). ``deliver`` raises InvocationError
        or Throttled for a failed batch."""
        self.view = view or (lambda: stream_mappings(source).get(mapping_uuid))
        self.deliver = deliver or self._invoke_function
        self.uuid = mapping_uuid
        self.shard = shard
        self.source = source
        self.runtime = runtime
        self.send = send
        self.stop = stop
        self.written = written
        self.position: int | None = None  # the last sequence number done
        self.started = False
        self.busy = False
        self.stats = StreamPollerStats()
        self._stats_lock = threading.Lock()  # lanes of a parallelized shard count at once
        self.thread = threading.Thread(target=self._run, name=f"stream-{mapping_uuid[:8]}", daemon=True)

    @property
    def clock(self) -> Clock | None:
        return self.runtime.clock

    def _now(self) -> float:
        return self.clock.timestamp() if self.clock is not None else time.time()

    def _age(self, record: StreamRecord) -> float:
        """Seconds since the record arrived, on the local clock."""
        arrived = self.clock.at_real(record.arrived).timestamp() if self.clock is not None else record.arrived
        return self._now() - arrived

    def _mapping(self) -> StreamMappingView | None:
        return self.view()

    def _start_position(self, mapping: StreamMappingView) -> None:
        """TRIM_HORIZON: from the oldest record; LATEST and AT_TIMESTAMP: from the first record that
        arrived at or after the mapping's creation or the timestamp."""
        if mapping.starting_position in ("LATEST", "AT_TIMESTAMP") and mapping.starting_timestamp is not None:
            with MOTO_LOCK:
                records = self.source.records(mapping.source_arn, self.shard, None, 1_000_000)
            before = [r for r in records if r.arrived < mapping.starting_timestamp]
            self.position = before[-1].sequence if before else None
        elif mapping.starting_position == "LATEST":
            with MOTO_LOCK:
                self.position = self.source.last_sequence(mapping.source_arn, self.shard)
        self.started = True

    def _may_read(self, mapping: StreamMappingView) -> None:
        """Lambda (or Pipes) reads a shard as the mapping's role: a role that may not gets nothing."""
        from localcloud.iam.enforcement import role_may

        if mapping.role and not role_may(
            "lambda", mapping.role, self.uuid[:64], self.source.read_action, mapping.source_arn
        ):
            raise PermissionError(f"{mapping.role} may not {self.source.read_action} on {mapping.source_arn}")

    def _read(self, mapping: StreamMappingView) -> list[StreamRecord]:
        """Up to a batch of records after the position, waiting out the batching window for more."""
        deadline: float | None = None
        while not self.stop.is_set():
            generation = self.written.generation
            limit = mapping.batch_size * mapping.parallelization_factor
            self._may_read(mapping)
            with MOTO_LOCK:
                records = self.source.records(mapping.source_arn, self.shard, self.position, limit)
            if records and deadline is None:
                deadline = time.monotonic() + mapping.batching_window
            if len(records) >= limit or (deadline is not None and time.monotonic() >= deadline):
                return records
            self.written.wait(
                generation, IDLE_WAIT_SECONDS if deadline is None else deadline - time.monotonic()
            )
        return []

    def _run(self) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                mapping = self._mapping()
                if mapping is None:
                    return
                if not mapping.enabled:
                    self.stop.wait(DISABLED_WAIT_SECONDS)
                    continue
                if not self.started:
                    self._start_position(mapping)
                records = self._read(mapping)
                backoff.reset()
                if not records:
                    continue
                self.busy = True
                self._process(mapping, records)
            except Exception as error:  # Lambda's pollers retry; the position only moves when a batch is done
                if self.stop.is_set():
                    return
                print(
                    f"[localcloud] stream poller {self.uuid[:8]} {self.shard}: error, "
                    f"retrying in {backoff.seconds:g} s: {error!r}"
                )
                backoff.wait(self.stop)
            finally:
                self.busy = False

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _process(self, mapping: StreamMappingView, records: list[StreamRecord]) -> None:
        passing = [r for r in records if matches(r.filter_document, mapping.filters)]
        self._count(records_filtered_out=len(records) - len(passing))
        work = lanes(passing, mapping.parallelization_factor, mapping.batch_size)
        threads = [
            threading.Thread(target=self._process_lane, args=(mapping, batches), daemon=True)
            for batches in work[1:]
        ]
        for thread in threads:
            thread.start()
        for batches in work[:1]:
            self._process_lane(mapping, batches)
        for thread in threads:
            thread.join()
        if not self.stop.is_set():  # every record read is done, skipped or filtered out
            self.position = records[-1].sequence

    def _process_lane(self, mapping: StreamMappingView, pending: list[_Batch]) -> None:
        """The batches of one lane, in order: each is done, or given up, before the next starts."""
        while pending and not self.stop.is_set():
            batch = pending.pop(0)
            outcome = self._invoke(mapping, batch)
            if outcome is None:  # done
                continue
            if outcome > 0:  # a partial batch response: the records before the first failure are done
                self._count(records_succeeded=outcome)
                batch = _Batch(batch.records[outcome:], batch.attempts, batch.retries, batch.last_error)
            if mapping.bisect and len(batch.records) > 1:  # splitting does not count as a retry
                half = len(batch.records) // 2
                pending[:0] = [
                    _Batch(batch.records[:half], batch.attempts, batch.retries),
                    _Batch(batch.records[half:], batch.attempts, batch.retries),
                ]
                continue
            condition = self._exhausted(mapping, batch)
            if condition is not None:
                self._give_up(mapping, batch, condition)
                continue
            batch.retries += 1
            self.stop.wait(min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (batch.retries - 1)))
            pending.insert(0, batch)

    def _invoke(self, mapping: StreamMappingView, batch: _Batch) -> int | None:
        """None if the batch is done; else the index of the first record to retry (0: all of them)."""
        self._count(batches=1)
        try:
            result = self.deliver(mapping, [r.event for r in batch.records])
        except (InvocationError, Throttled) as error:
            batch.attempts += 1
            batch.last_error = "Unhandled" if isinstance(error, InvocationError) else "Throttled"
            self._count(records_failed=len(batch.records))
            return 0
        retry_from = batch_item_failure(result, batch.records) if mapping.report_batch_item_failures else None
        if retry_from is None:
            self._count(records_succeeded=len(batch.records))
            return None
        batch.attempts += 1
        batch.last_error = "Unhandled"
        index = 0 if retry_from is False else int(retry_from)
        self._count(records_failed=len(batch.records) - index)
        return index

    def _invoke_function(self, mapping: StreamMappingView, events: list[dict[str, Any]]) -> Any:
        if self.source.adds_identity:
            role = lambda_function(mapping.function_arn).role
            events = [{**event, "invokeIdentityArn": role} for event in events]
        return self.runtime.invoke(mapping.function_arn, {"Records": events}, wait=60.0)

    def _exhausted(self, mapping: StreamMappingView, batch: _Batch) -> str | None:
        """The condition that ends a batch's retries, if one holds."""
        if mapping.maximum_retry_attempts >= 0 and batch.retries >= mapping.maximum_retry_attempts:
            return "RetryAttemptsExhausted"
        if mapping.maximum_record_age >= 0 and self._age(batch.records[0]) > mapping.maximum_record_age:
            return "MaximumRecordAgeExceeded"
        return None

    def _give_up(self, mapping: StreamMappingView, batch: _Batch, condition: str) -> None:
        """The batch is skipped; with an on-failure destination, described there as Lambda does."""
        if mapping.on_failure is None:
            return
        first, last = batch.records[0], batch.records[-1]

        def stamp(real: float) -> str:
            moment = self.clock.at_real(real) if self.clock is not None else datetime.fromtimestamp(real, UTC)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": mapping.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": batch.last_error,
            },
            "version": "1.0",
            "timestamp": stamp(time.time()),
            self.source.batch_info_key: {
                "shardId": self.shard,
                "startSequenceNumber": str(first.sequence),
                "endSequenceNumber": str(last.sequence),
                "approximateArrivalOfFirstRecord": stamp(first.arrived),
                "approximateArrivalOfLastRecord": stamp(last.arrived),
                "batchSize": len(batch.records),
                "streamArn": mapping.source_arn,
            },
        }
        self.send(mapping.on_failure, record)
        self._count(batches_sent_to_destination=1)


_written_listeners: list[Callable[[], None]] = []


def listen_to_writes(signal: Signal) -> Callable[[], None]:
    """Fire ``signal`` whenever a stream gets a record; returns what stops it."""
    _written_listeners.append(signal.fire)
    return lambda: _written_listeners.remove(signal.fire) if signal.fire in _written_listeners else None


def stream_written() -> None:
    """Called by a stream service's patches (under moto's lock) whenever a stream gets a record."""
    for listener in tuple(_written_listeners):
        listener()


def apply() -> None:
    """LATEST starts at the records that arrive once the mapping exists: mappings are stamped when
    they are created (moto keeps a creation time only to the second, in the machine's time zone)."""
    from moto.awslambda.models import LambdaBackend

    create = LambdaBackend.create_event_source_mapping

    def create_and_stamp(self: Any, spec: dict[str, Any]) -> Any:
        mapping = create(self, spec)
        setattr(mapping, CREATED_AT, time.time())
        return mapping

    LambdaBackend.create_event_source_mapping = create_and_stamp  # type: ignore[method-assign]


def stream_mappings(source: StreamSource) -> dict[str, StreamMappingView]:
    from moto.awslambda.models import lambda_backends

    with MOTO_LOCK:
        mappings = lambda_backends[ACCOUNT][REGION]._event_source_mappings.values()
        return {m.uuid: StreamMappingView.of(m) for m in mappings if source.handles(m.event_source_arn)}


class ShardPollerSet(PollerSet[tuple[str, str]]):
    """Pollers keyed by (owner, shard) that wake when a stream is written to: the stream mappings', and
    stream-sourced pipes'."""

    def __init__(self, sources: Sequence[StreamSource]) -> None:
        super().__init__()
        self.sources = list(sources)
        self.signal = Signal()  # fired when any stream is written to
        self._stop_listening = listen_to_writes(self.signal)

    def shards(self, owner: str, stream_arn: str) -> dict[tuple[str, str], StreamSource]:
        """One key per shard of the stream, with the source that reads it (none: no source handles it)."""
        source = next((s for s in self.sources if s.handles(stream_arn)), None)
        if source is None:
            return {}
        with MOTO_LOCK:
            return {(owner, shard): source for shard in source.shards(stream_arn)}

    def wake(self) -> None:
        self._stop_listening()
        self.signal.fire()


class StreamMappings(ShardPollerSet):
    """Keeps one poller per stream mapping and shard, for each stream service given."""

    name = "stream-mappings"

    def __init__(
        self,
        runtime: LocalRuntime,
        sources: Sequence[StreamSource],
        send: Callable[[str, dict[str, Any]], None],
    ) -> None:
        super().__init__(sources)
        self.runtime = runtime
        self.send = send

    def wanted(self) -> dict[tuple[str, str], Any]:
        wanted: dict[tuple[str, str], StreamSource] = {}
        for source in self.sources:
            for mapping in stream_mappings(source).values():
                wanted |= self.shards(mapping.uuid, mapping.source_arn)
        return wanted

    def create(self, key: tuple[str, str], spec: Any, stop: threading.Event) -> list[Poller]:
        return [
            ShardPoller(
                key[0],
                key[1],
                source=spec,
                runtime=self.runtime,
                send=self.send,
                stop=stop,
                written=self.signal,
            )
        ]

    def stats(self) -> dict[str, StreamPollerStats]:
        totals: dict[str, StreamPollerStats] = {}
        for (mapping_uuid, _), (_, pollers) in self.pollers.items():
            total = totals.setdefault(mapping_uuid, StreamPollerStats())
            for poller in pollers:
                for name, value in vars(poller.stats).items():
                    setattr(total, name, getattr(total, name) + value)
        return totals
