"""Request-reply on the deployed stack beyond the demo's round trips (test_demo.py): a caller that times
out (and whose late reply the next call drops), and the Step Functions task-token variant."""

from __future__ import annotations

import json
import uuid

import pytest

from asyncstack.runtime.rpc import RpcClient, RpcTimeoutError
from demo.scenarios import finished_execution
from localcloud.cloud import LocalCloud
from shared.png import encode, gradient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.stack_outputs()


@pytest.fixture(scope="module")
def source_key(cloud: LocalCloud, outputs: dict[str, str]) -> str:
    """A 320 x 200 PNG uploaded where callers put images to resize."""
    key = f"uploads/{uuid.uuid4().hex[:8]}.png"
    cloud.client("s3").put_object(
        Bucket=outputs["ImagesBucketName"], Key=key, Body=encode(gradient(320, 200))
    )
    return key


def _client(cloud: LocalCloud, outputs: dict[str, str]) -> RpcClient:
    # The worker checks the deadline on its clock: the local cloud's, which earlier tests may have moved.
    return RpcClient(
        outputs["ImageResizeQueueUrl"], outputs["ImageResizeReplyQueueUrl"], sqs=cloud.client("sqs"),
        clock=cloud.clock.timestamp,
    )  # fmt: skip


def test_a_caller_that_stops_waiting_gets_rpc_timeout(
    cloud: LocalCloud, outputs: dict[str, str], source_key: str
) -> None:
    # Given a caller that stops waiting before the worker reads its request (its deadline, sent with the
    # request, lies a minute back: a 10 ms timeout alone races a warm worker that answers within the poll)
    late = RpcClient(
        outputs["ImageResizeQueueUrl"], outputs["ImageResizeReplyQueueUrl"], sqs=cloud.client("sqs"),
        clock=lambda: cloud.clock.timestamp() - 60,
    )  # fmt: skip
    # When it calls / Then the worker drops the request unworked, and RpcTimeoutError says what timed out
    with pytest.raises(RpcTimeoutError, match=r"image\.resize"):
        late.call("image.resize", {"source_key": source_key, "max_width": 32, "max_height": 32}, timeout=0.01)


def test_a_reply_to_an_abandoned_call_is_dropped_by_the_next_call(
    cloud: LocalCloud, outputs: dict[str, str], source_key: str
) -> None:
    # Given a reply waiting in the reply queue for a call nobody waits for any more
    sqs = cloud.client("sqs")
    reply_queue = outputs["ImageResizeReplyQueueUrl"]
    sqs.send_message(
        QueueUrl=outputs["ImageResizeQueueUrl"],
        MessageBody=json.dumps(
            {"action": "image.resize", "payload": {"source_key": source_key, "max_width": 8, "max_height": 8}}
        ),
        MessageAttributes={
            "reply_to": {"DataType": "String", "StringValue": reply_queue},
            "correlation_id": {"DataType": "String", "StringValue": "abandoned-call"},
            "deadline": {
                "DataType": "Number",
                "StringValue": str(int((cloud.clock.timestamp() + 60) * 1000)),
            },
        },
    )
    replies = reply_queue.rsplit("/", 1)[-1]
    cloud.wait_until(lambda: cloud.queues()[replies]["visible"] >= 1, 30, "the abandoned call's reply")
    # When the client makes its next call
    result = _client(cloud, outputs).call(
        "image.resize", {"source_key": source_key, "max_width": 16, "max_height": 16}, timeout=30
    )
    # Then it gets its own reply (16 x 10), not the 8 x 5 one, and the stale reply is gone
    assert (result["width"], result["height"]) == (16, 10)
    assert cloud.queues()[replies]["visible"] == 0


def test_the_task_token_variant_ends_the_task_with_the_workers_result(
    cloud: LocalCloud, outputs: dict[str, str], source_key: str
) -> None:
    sfn = cloud.client("stepfunctions")
    heartbeats = cloud.app.api_calls.snapshot().get("states", {}).get("SendTaskHeartbeat", 0)
    # Given the workflow that sends the request with its task token
    started = sfn.start_execution(
        stateMachineArn=outputs["ImageResizeWorkflowArn"],
        input=json.dumps({"source_key": source_key, "max_width": 100, "max_height": 100}),
    )
    # When the worker has answered
    execution = finished_execution(cloud, started["executionArn"])
    # Then the task succeeded with the worker's result (SendTaskSuccess), after heartbeats
    assert execution["status"] == "SUCCEEDED", execution
    result = json.loads(execution["output"])["result"]
    assert (result["width"], result["height"]) == (100, 63)
    assert cloud.app.api_calls.snapshot()["states"]["SendTaskHeartbeat"] > heartbeats


def test_the_task_token_variant_fails_the_task_with_the_workers_error(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    sfn = cloud.client("stepfunctions")
    # Given a request for an image that does not exist
    started = sfn.start_execution(
        stateMachineArn=outputs["ImageResizeWorkflowArn"],
        input=json.dumps({"source_key": "uploads/missing.png", "max_width": 10, "max_height": 10}),
    )
    # When the worker has answered / Then the task failed with its error (SendTaskFailure)
    execution = finished_execution(cloud, started["executionArn"])
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SourceNotFound"
