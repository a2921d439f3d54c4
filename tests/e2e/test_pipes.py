"""EventBridge Pipes on the local cloud: source, filter, enrichment, input template and target, as
Pipes runs them. The stack is ``tests/e2e/pipes_app/app.py``, deployed with the CDK CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "pipes_app" / "app.py"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.deploy(["PipesStack"], app=f"{sys.executable} {APP}").outputs


def _drain(cloud: LocalCloud, url: str, count: int) -> list[dict[str, Any]]:
    """``count`` messages from the queue (waiting for them), deleted."""
    sqs, got = cloud.client("sqs"), []

    def more() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(got) >= count

    cloud.wait_until(more, TIMEOUT, f"{count} messages")
    return got


def test_an_sqs_pipe_filters_enriches_and_delivers_through_its_input_template(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    sqs = cloud.client("sqs")
    # When two orders and one other message are sent to the pipe's source queue
    for body in (
        {"kind": "order", "id": "o-1"},
        {"kind": "refund", "id": "r-1"},
        {"kind": "order", "id": "o-2"},
    ):
        sqs.send_message(QueueUrl=outputs["OrdersQueueUrl"], MessageBody=json.dumps(body))
    # Then the target queue gets the two orders, enriched and rendered by the input template
    delivered = _drain(cloud, outputs["EnrichedQueueUrl"], 2)
    assert sorted(delivered, key=lambda d: d["id"]) == [
        {"id": "o-1", "summary": "order o-1 enriched: true"},
        {"id": "o-2", "summary": "order o-2 enriched: true"},
    ]
    # And the source queue is empty: delivered messages and the filtered-out one are deleted
    cloud.wait_until(cloud.idle, TIMEOUT, "the local cloud to be idle")
    attributes = sqs.get_queue_attributes(QueueUrl=outputs["OrdersQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert (
        attributes["ApproximateNumberOfMessages"]
        == attributes["ApproximateNumberOfMessagesNotVisible"]
        == "0"
    )


def test_a_dynamodb_stream_pipe_puts_each_change_on_the_event_bus(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # When an item is written to the table
    cloud.client("dynamodb").put_item(TableName=outputs["ItemsTableName"], Item={"pk": {"S": "item-1"}})
    # Then the bus got an event with the pipe's source and detail type, its detail the stream record
    (event,) = _drain(cloud, outputs["ChangesQueueUrl"], 1)
    assert event["source"] == "pipes.test" and event["detail-type"] == "ItemChanged"
    assert event["detail"]["eventName"] == "INSERT"
    assert event["detail"]["dynamodb"]["NewImage"] == {"pk": {"S": "item-1"}}


def test_a_kinesis_pipe_is_enriched_by_an_express_state_machine_and_published_to_a_topic(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # When readings are put on the stream
    for device in ("meter-1", "meter-2"):
        cloud.client("kinesis").put_record(
            StreamName=outputs["ReadingsStreamName"], PartitionKey=device, Data=b'{"kw": 3}'
        )
    # Then each reached the topic's subscriber as the state machine labelled it
    delivered = _drain(cloud, outputs["LabelledQueueUrl"], 2)
    assert sorted(delivered, key=lambda d: d["device"]) == [
        {"device": "meter-1", "labelled": True},
        {"device": "meter-2", "labelled": True},
    ]


def test_an_sqs_pipe_invokes_its_lambda_target_with_the_batch_through_the_input_template(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # When a job is sent to the pipe's source queue
    cloud.client("sqs").send_message(QueueUrl=outputs["JobsQueueUrl"], MessageBody=json.dumps({"id": "j-1"}))
    # Then the function got the batch, each event rendered by the template, and forwarded it
    (batch,) = _drain(cloud, outputs["ForwardedQueueUrl"], 1)
    assert batch == [{"job": "j-1"}]


def test_an_sqs_pipe_starts_its_state_machine_target_with_the_batch(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # When a message is sent to the pipe's source queue
    cloud.client("sqs").send_message(QueueUrl=outputs["RunsQueueUrl"], MessageBody="run-1")
    # Then an execution started with the batch of SQS records as its input
    (batch,) = _drain(cloud, outputs["StartedQueueUrl"], 1)
    assert [record["body"] for record in batch] == ["run-1"]
    assert batch[0]["eventSourceARN"].endswith(":" + outputs["RunsQueueUrl"].rsplit("/", 1)[-1])
