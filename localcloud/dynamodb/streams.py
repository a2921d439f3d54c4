"""DynamoDB Streams as a source of Lambda event source mappings (``localcloud.awslambda.streams``).

moto keeps a table's stream as one shard of records. It also invoked the mapped functions itself,
inside the write, with every record the shard held, and then emptied the shard (so GetRecords lost
them and sequence numbers started over): that trigger is off, and the local cloud's stream pollers
read the shard instead, as Lambda does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localcloud.awslambda.streams import StreamRecord, stream_written
from localcloud.server import ACCOUNT, REGION


class DynamoDBStreams:
    """The records of a table's stream, as Lambda hands them to a function."""

    batch_info_key = "DDBStreamBatchInfo"
    adds_identity = False
    read_action = "dynamodb:GetRecords"

    @staticmethod
    def handles(source_arn: str) -> bool:
        return source_arn.startswith("arn:aws:dynamodb:") and "/stream/" in source_arn

    @staticmethod
    def _shard(source_arn: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        table_name = source_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
        table = dynamodb_backends[ACCOUNT][REGION].tables.get(table_name)
        return None if table is None else table.stream_shard

    def shards(self, source_arn: str) -> list[str]:
        shard = self._shard(source_arn)
        return [] if shard is None else [shard.id]

    def records(self, source_arn: str, shard: str, after: int | None, limit: int) -> list[StreamRecord]:
        found = self._shard(source_arn)
        if found is None:
            return []
        start = 0 if after is None else after - found.starting_sequence_number + 1
        return [self._record(source_arn, item.to_json()) for item in found.items[start : start + limit]]

    def last_sequence(self, source_arn: str, shard: str) -> int | None:
        found = self._shard(source_arn)
        return (
            None
            if found is None or not found.items
            else int(found.items[-1].to_json()["dynamodb"]["SequenceNumber"])
        )

    @staticmethod
    def _record(source_arn: str, record: dict[str, Any]) -> StreamRecord:
        change = dict(record["dynamodb"])
        created = change["ApproximateCreationDateTime"]
        arrived = created.replace(tzinfo=UTC).timestamp() if isinstance(created, datetime) else float(created)
        change["ApproximateCreationDateTime"] = int(arrived)  # epoch seconds, as in Lambda's event
        event = {**record, "dynamodb": change, "eventSourceARN": source_arn}
        key: dict[str, Any] = next(iter((change.get("Keys") or {}).values()), {})  # the partition key's value
        return StreamRecord(
            sequence=int(change["SequenceNumber"]),
            partition_key=str(next(iter(key.values()), "")),
            arrived=arrived,
            event=event,
            filter_document=event,  # DynamoDB filters match the whole record (eventName, dynamodb.NewImage, ...)
        )


def apply() -> None:
    _no_synchronous_stream_trigger()
    _writes_tell_the_pollers()


def _no_synchronous_stream_trigger() -> None:
    from moto.dynamodb.models.table import Table

    Table.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: {}, lambda self, value: None
    )


def _writes_tell_the_pollers() -> None:
    from moto.dynamodb.models.table import StreamShard

    add = StreamShard.add

    def add_and_tell(self: Any, old: Any, new: Any) -> None:
        add(self, old, new)
        stream_written()

    StreamShard.add = add_and_tell  # type: ignore[method-assign]
