"""Kinesis data streams as a source of Lambda event source mappings (``localcloud.awslambda.streams``).

moto invoked the one mapping of a stream it remembered (the last created) itself, asynchronously and
one record at a time, inside PutRecord, so records arrived out of order and without batching or
filters: that trigger is off, and the local cloud's pollers read each shard instead, as Lambda does.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from localcloud.awslambda.streams import StreamRecord, stream_written
from localcloud.server import ACCOUNT, REGION


class KinesisStreams:
    """The records of a stream's shards, as Lambda hands them to a function."""

    batch_info_key = "KinesisBatchInfo"
    adds_identity = True  # Lambda's Kinesis records carry invokeIdentityArn, the function's role
    read_action = "kinesis:GetRecords"

    @staticmethod
    def handles(source_arn: str) -> bool:
        return source_arn.startswith("arn:aws:kinesis:") and ":stream/" in source_arn

    @staticmethod
    def _stream(source_arn: str) -> Any:
        from moto.kinesis.models import kinesis_backends

        return next(
            (s for s in kinesis_backends[ACCOUNT][REGION].streams.values() if s.arn == source_arn), None
        )

    def shards(self, source_arn: str) -> list[str]:
        stream = self._stream(source_arn)
        return [] if stream is None else list(stream.shards)

    def records(self, source_arn: str, shard: str, after: int | None, limit: int) -> list[StreamRecord]:
        stream = self._stream(source_arn)
        found = None if stream is None else stream.shards.get(shard)
        if found is None:
            return []
        later = (r for seq, r in found.records.items() if after is None or seq > after)
        return [self._record(source_arn, shard, r) for r in itertools.islice(later, limit)]

    def last_sequence(self, source_arn: str, shard: str) -> int | None:
        stream = self._stream(source_arn)
        found = None if stream is None else stream.shards.get(shard)
        return None if found is None or not found.records else int(found.get_max_sequence_number())

    @staticmethod
    def _record(source_arn: str, shard: str, record: Any) -> StreamRecord:
        fields = {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": str(record.sequence_number),
            "data": record.data,  # base64, as Lambda passes it
            "approximateArrivalTimestamp": record.created_at,
        }
        event = {
            "kinesis": fields,
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard}:{record.sequence_number}",
            "eventName": "aws:kinesis:record",
            "awsRegion": REGION,
            "eventSourceARN": source_arn,
        }
        return StreamRecord(
            sequence=int(record.sequence_number),
            partition_key=record.partition_key,
            arrived=float(record.created_at),
            event=event,
            filter_document={**fields, "data": _decoded(record.data)},  # filters match the data as JSON
        )


def _decoded(data: str) -> Any:
    """A record's data as filters see it: the JSON object it holds, else the data as it is."""
    try:
        value = json.loads(base64.b64decode(data))
    except ValueError:
        return data
    return value if isinstance(value, dict) else data


def apply() -> None:
    """moto's own trigger off; every record written tells the pollers."""
    from moto.kinesis.models import Shard, Stream

    Stream.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: {}, lambda self, value: None
    )
    put_record = Shard.put_record

    def put_and_tell(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        sequence = put_record(self, partition_key, data, explicit_hash_key)
        stream_written()
        return str(sequence)

    Shard.put_record = put_and_tell  # type: ignore[method-assign]
