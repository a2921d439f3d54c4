"""A stream mapping's shard poller, as Lambda polls streams ("Polling and batching streams", "Error
handling"): ParallelizationFactor runs up to N batches of one shard at once with each partition key's
records in order; BisectBatchOnFunctionError splits a failing batch without counting a retry."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from localcloud.awslambda.runtime import InvocationError
from localcloud.awslambda.streams import ShardPoller, Signal, StreamMappingView, StreamRecord, lanes

pytestmark = pytest.mark.unit

KEYS = [f"device-{n}" for n in range(8)]


def record(sequence: int, key: str) -> StreamRecord:
    event = {"sequence": sequence, "key": key}
    return StreamRecord(
        sequence=sequence, partition_key=key, arrived=time.time(), event=event, filter_document=event
    )


class OneShard:
    """A stream of one shard holding ``records``."""

    batch_info_key = "KinesisBatchInfo"
    adds_identity = False
    read_action = "kinesis:GetRecords"

    def __init__(self, records: list[StreamRecord]) -> None:
        self._records = records

    def handles(self, source_arn: str) -> bool:
        return True

    def shards(self, source_arn: str) -> list[str]:
        return ["shardId-000000000000"]

    def records(self, source_arn: str, shard: str, after: int | None, limit: int) -> list[StreamRecord]:
        return [r for r in self._records if after is None or r.sequence > after][:limit]

    def last_sequence(self, source_arn: str, shard: str) -> int | None:
        return self._records[-1].sequence if self._records else None


MAPPING = StreamMappingView(
    uuid="m", function_arn="arn:aws:lambda:us-east-1:123456789012:function:f", source_arn="arn:stream",
    enabled=True, batch_size=5, batching_window=0.0, starting_position="TRIM_HORIZON", starting_timestamp=None,
    maximum_retry_attempts=-1, maximum_record_age=-1.0, bisect=False, report_batch_item_failures=False,
    on_failure=None, filters=(),
)  # fmt: skip


class Recorder:
    """A function that takes a while per batch and notes what ran at once and in which order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.seen: list[dict[str, Any]] = []

    def __call__(self, _: StreamMappingView, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
            self.seen += events


def run(
    records: list[StreamRecord], mapping: StreamMappingView, recorder: Recorder | None = None,
    sent: list[Any] | None = None, *, expected: int | None = None,
) -> Recorder:  # fmt: skip
    """Poll the shard until the recorder saw ``expected`` records (default: all of them)."""
    recorder, stop = recorder or Recorder(), threading.Event()
    poller = ShardPoller(
        mapping.uuid, "shardId-000000000000", source=OneShard(records), runtime=type("R", (), {"clock": None})(),
        send=lambda arn, record: (sent if sent is not None else []).append((arn, record)), stop=stop,
        written=Signal(), view=lambda: mapping, deliver=recorder,
    )  # fmt: skip
    poller.thread.start()
    deadline = time.monotonic() + 10
    while (
        len(recorder.seen) < (len(records) if expected is None else expected) and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    stop.set()
    poller.thread.join(timeout=2)
    return recorder


def test_a_factor_above_one_runs_batches_of_one_shard_at_once_in_order_per_partition_key() -> None:
    # Given 80 records over 8 partition keys, interleaved, in one shard, and a mapping with factor 4
    records = [record(n, KEYS[n % len(KEYS)]) for n in range(1, 81)]
    # When the shard is polled
    recorder = run(records, replace(MAPPING, parallelization_factor=4))
    # Then every record arrived once, up to 4 batches ran at once, and each key's records kept their order
    assert sorted(e["sequence"] for e in recorder.seen) == list(range(1, 81))
    assert 1 < recorder.most_at_once <= 4
    for key in KEYS:
        mine = [e["sequence"] for e in recorder.seen if e["key"] == key]
        assert mine == sorted(mine) and len(mine) == 10


def test_the_default_factor_runs_one_batch_of_a_shard_at_a_time_in_shard_order() -> None:
    records = [record(n, KEYS[n % len(KEYS)]) for n in range(1, 31)]
    recorder = run(records, MAPPING)
    assert recorder.most_at_once == 1
    assert [e["sequence"] for e in recorder.seen] == list(range(1, 31))


def test_lanes_keep_one_key_in_one_lane_and_cut_each_lane_into_batches() -> None:
    records = [record(n, KEYS[n % 3]) for n in range(1, 31)]
    work = lanes(records, factor=10, batch_size=4)
    by_key: dict[str, int] = {}
    for index, batches in enumerate(work):
        assert all(len(batch.records) <= 4 for batch in batches)
        for batch in batches:
            for r in batch.records:
                assert by_key.setdefault(r.partition_key, index) == index
    assert len(work) <= 3 and sum(len(b.records) for batches in work for b in batches) == 30


class FailsOn(Recorder):
    """A function that fails every batch holding the record with sequence ``poison``."""

    def __init__(self, poison: int) -> None:
        super().__init__()
        self.poison = poison
        self.batches: list[list[int]] = []

    def __call__(self, mapping: StreamMappingView, events: list[dict[str, Any]]) -> None:
        self.batches.append([e["sequence"] for e in events])
        if any(e["sequence"] == self.poison for e in events):
            raise InvocationError("ValueError", "poison")
        self.seen += events


def test_a_failing_record_is_split_out_then_retried_alone_until_its_retries_are_spent() -> None:
    # Given a batch of four whose third record always fails, split on error, one retry allowed
    records = [record(n, "k") for n in range(1, 5)]
    mapping = replace(
        MAPPING, batch_size=4, bisect=True, maximum_retry_attempts=1, on_failure="arn:aws:sqs:q"
    )
    sent: list[Any] = []
    # When the shard is polled
    recorder = run(records, mapping, FailsOn(poison=3), sent, expected=3)
    # Then the batch was split down to the failing record (no retry counted), which was tried alone
    # once more (its one retry) and then described in the on-failure destination
    assert recorder.batches == [[1, 2, 3, 4], [1, 2], [3, 4], [3], [3], [4]]
    ((arn, failure),) = sent
    assert arn == "arn:aws:sqs:q" and failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 4
    assert (
        failure["KinesisBatchInfo"]["startSequenceNumber"]
        == failure["KinesisBatchInfo"]["endSequenceNumber"]
        == "3"
    )
