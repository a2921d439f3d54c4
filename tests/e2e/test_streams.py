"""DynamoDB Streams and Kinesis event source mappings on the local cloud, as Lambda polls them.

The stack is ``tests/e2e/streams_app/app.py``, deployed with the CDK CLI: tables with streams and a
Kinesis stream, each mapped to a function that records the records it gets (the sink table) and fails
those asked to.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "streams_app" / "app.py"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.deploy(["StreamsStack"], app=f"{sys.executable} {APP}").outputs


def _put(cloud: LocalCloud, table: str, key: str, **attributes: Any) -> None:
    item = {"pk": {"S": key}} | {
        name: {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
        for name, value in attributes.items()
    }
    cloud.client("dynamodb").put_item(TableName=table, Item=item)


def _seen(cloud: LocalCloud, outputs: dict[str, str], table: str) -> list[dict[str, Any]]:
    """What the function recorded for ``table``, in the order it handled the records."""
    dynamodb, found, start = cloud.client("dynamodb"), [], None
    while True:
        page = dynamodb.query(
            TableName=outputs["SinkTableName"], KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"seen#{table}"}}, ConsistentRead=True,
            **({"ExclusiveStartKey": start} if start else {}),
        )  # fmt: skip
        found += [{k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]]
        if not (start := page.get("LastEvaluatedKey")):
            return found


def _wait_for(cloud: LocalCloud, outputs: dict[str, str], table: str, count: int) -> list[dict[str, Any]]:
    cloud.wait_until(
        lambda: len(_seen(cloud, outputs, table)) >= count, TIMEOUT, f"{count} records of {table}"
    )
    return _seen(cloud, outputs, table)


def test_every_change_reaches_the_function_in_order_with_its_images(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """A stream's records reach the mapped function in the shard's order, with INSERT, MODIFY and
    REMOVE and the old and new images the stream's view type holds."""
    table = outputs["OrderedTableName"]
    # When items are written, changed and deleted
    for n in range(12):
        _put(cloud, table, f"item-{n:02d}", n=n)
    _put(cloud, table, "item-00", n=100)
    cloud.client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": "item-01"}})
    # Then the function handled 14 records, in the order of their sequence numbers
    seen = _wait_for(cloud, outputs, table, 14)
    sequences = [int(s["sequence"]) for s in seen]
    assert len(seen) == 14 and sequences == sorted(sequences) and len(set(sequences)) == 14
    assert [s["event_name"] for s in seen] == ["INSERT"] * 12 + ["MODIFY", "REMOVE"]
    assert all(int(s["batch_size"]) <= 10 for s in seen)
    modify, remove = json.loads(seen[12]["record"]), json.loads(seen[13]["record"])
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "0"} and modify["dynamodb"]["NewImage"]["n"] == {
        "N": "100"
    }
    assert "NewImage" not in remove["dynamodb"] and remove["dynamodb"]["Keys"] == {"pk": {"S": "item-01"}}
    assert modify["eventSource"] == "aws:dynamodb" and modify["eventSourceARN"].startswith(
        "arn:aws:dynamodb:"
    )
    assert isinstance(modify["dynamodb"]["ApproximateCreationDateTime"], int)


def test_filter_criteria_deliver_only_the_records_that_match(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """FilterCriteria match the whole stream record (eventName, dynamodb.NewImage); the rest are skipped."""
    table = outputs["FilteredTableName"]
    _put(cloud, table, "a", kind="wanted")
    _put(cloud, table, "b", kind="other")
    _put(cloud, table, "a", kind="wanted", again="yes")  # a MODIFY
    _put(cloud, table, "c", kind="wanted")
    seen = _wait_for(cloud, outputs, table, 2)
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")
    assert [s["key"] for s in _seen(cloud, outputs, table)] == ["a", "c"]
    assert {s["event_name"] for s in seen} == {"INSERT"}


def test_a_record_that_keeps_failing_is_isolated_by_bisection_and_sent_to_the_on_failure_queue(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """BisectBatchOnFunctionError splits a failing batch until the failing record is alone; after
    MaximumRetryAttempts it is skipped and described in the on-failure destination (DDBStreamBatchInfo)."""
    table = outputs["FailingTableName"]
    # Given a batch of four records, the third of which always fails
    for key in ("one", "two", "poison", "four"):
        _put(cloud, table, key, **({"poison": "yes"} if key == "poison" else {}))
    # Then the other three are handled (a record may come again with a batch that failed: at least
    # once), and the processing goes on past the failing one
    cloud.wait_until(
        lambda: {s["key"] for s in _seen(cloud, outputs, table)} == {"one", "two", "four"}, TIMEOUT,
        "the records around the failing one",
    )  # fmt: skip
    # And the failed batch (the poison record alone) is described in the on-failure queue
    sqs = cloud.client("sqs")
    cloud.wait_until(
        lambda: int(sqs.get_queue_attributes(QueueUrl=outputs["FailedBatchesQueueUrl"],
                                             AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"]) >= 1,
        TIMEOUT, "the on-failure record",
    )  # fmt: skip
    (message,) = sqs.receive_message(QueueUrl=outputs["FailedBatchesQueueUrl"])["Messages"]
    failure = json.loads(message["Body"])
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # its try alone and one retry, after the batches it failed in before being split out (how the
    # records were read together decides how many: the exact count is in tests/unit/localcloud/test_shard_poller.py)
    assert 2 <= failure["requestContext"]["approximateInvokeCount"] <= 4
    assert failure["responseContext"]["functionError"] == "Unhandled"
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"].startswith("arn:aws:dynamodb:") and "/stream/" in info["streamArn"]


def test_a_reported_batch_item_failure_is_retried_from_that_record(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """With ReportBatchItemFailures, Lambda checkpoints before the lowest failed sequence number and
    retries from there: records before it are not delivered again."""
    table = outputs["PartialTableName"]
    # Given five records in one batch, the third failing its first delivery
    for n in range(5):
        _put(cloud, table, f"p{n}", **({"fail_times": 1} if n == 2 else {}))
    # Then every record is handled, the ones before the failure once
    cloud.wait_until(
        lambda: {s["key"] for s in _seen(cloud, outputs, table)} == {f"p{n}" for n in range(5)}, TIMEOUT,
        "every record handled",
    )  # fmt: skip
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")
    keys = [s["key"] for s in _seen(cloud, outputs, table)]
    assert keys.count("p0") == 1 and keys.count("p1") == 1 and keys.count("p2") == 1
    # and the records after it were delivered again with it (at least once, as Lambda does)
    assert keys.count("p3") == 2 and keys.count("p4") == 2


def test_latest_starts_at_the_records_written_after_the_mapping_exists(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """StartingPosition LATEST: the records the stream held before the mapping was created are not delivered."""
    # Given a table whose stream already holds a record
    dynamodb, lambda_ = cloud.client("dynamodb"), cloud.client("lambda")
    table = dynamodb.create_table(
        TableName="LateTable", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]  # fmt: skip
    _put(cloud, "LateTable", "before-the-mapping")
    # (the function's role may read the new stream, as grant_stream_read would let it)
    role = lambda_.get_function(FunctionName=outputs["RecorderFunctionName"])["Configuration"]["Role"]
    cloud.client("iam").put_role_policy(
        RoleName=role.rsplit("/", 1)[-1], PolicyName="late-table-stream",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Resource": table["LatestStreamArn"],
            "Action": ["dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream"],
        }]}),
    )  # fmt: skip
    # When a mapping starting at LATEST is created, and then a record written
    lambda_.create_event_source_mapping(
        FunctionName=outputs["RecorderFunctionName"], EventSourceArn=table["LatestStreamArn"],
        StartingPosition="LATEST", BatchSize=10,
    )  # fmt: skip
    _put(cloud, "LateTable", "after-the-mapping")
    # Then only the later record is delivered
    _wait_for(cloud, outputs, "LateTable", 1)
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")
    assert [s["key"] for s in _seen(cloud, outputs, "LateTable")] == ["after-the-mapping"]


def test_kinesis_records_reach_the_function_in_order_per_shard_and_filtered_on_their_data(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """A Kinesis mapping reads every shard in order, filters on the record's data as JSON, and hands the
    function Lambda's Kinesis records (base64 data, eventID shard:sequence, invokeIdentityArn)."""
    kinesis = cloud.client("kinesis")
    stream = outputs["ReadingsStreamName"]
    # When readings for two devices (partition keys) are put, with other records among them
    for n in range(6):
        for device in ("device-a", "device-b"):
            kinesis.put_record(
                StreamName=stream, PartitionKey=device, Data=json.dumps({"kind": "reading", "n": n}).encode()
            )
        kinesis.put_record(
            StreamName=stream, PartitionKey="device-a", Data=json.dumps({"kind": "noise"}).encode()
        )
    # Then the function got the twelve readings only, each device's in the order they were put
    seen = _wait_for(cloud, outputs, "kinesis", 12)
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")
    seen = _seen(cloud, outputs, "kinesis")
    assert len(seen) == 12 and all(json.loads(s["data"])["kind"] == "reading" for s in seen)
    for device in ("device-a", "device-b"):
        assert [json.loads(s["data"])["n"] for s in seen if s["key"] == device] == list(range(6))
    assert all(int(s["batch_size"]) <= 5 for s in seen)
    record = json.loads(seen[0]["record"])
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventID"] == f"{record['eventID'].split(':')[0]}:{record['kinesis']['sequenceNumber']}"
    assert record["invokeIdentityArn"].startswith("arn:aws:iam::")
    assert record["eventSourceARN"].endswith(f":stream/{stream}")
