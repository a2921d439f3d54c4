"""SQS long polls on the local endpoint: a waiting ReceiveMessage returns as soon as a message is there
for it, however it got there (a send, SNS fan-out, the end of a delay, a move of the local clock), and
costs moto nothing while it waits (an idle local cloud with two dozen pollers burned a fifth of a core
re-polling four times a second)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.server import free_port

pytestmark = pytest.mark.unit

LONG_POLL = 20  # seconds: every wait below must end well before it, woken by its message


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(
        port=free_port(), api_port=None, workdir=tmp_path_factory.mktemp("cloud"), extensions=[]
    ) as started:
        yield started


@pytest.fixture
def queue(cloud: LocalCloud, request: pytest.FixtureRequest) -> str:
    return str(cloud.client("sqs").create_queue(QueueName=request.node.name[:80])["QueueUrl"])


def waited_for(
    cloud: LocalCloud, queue: str, action: Callable[[], object]
) -> tuple[list[dict[str, Any]], float]:
    """(messages, seconds) of a long poll on ``queue`` during which ``action`` runs."""
    answer: list[Any] = []

    def receive() -> None:
        started = time.monotonic()
        messages = cloud.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=LONG_POLL)
        answer.extend([messages.get("Messages", []), time.monotonic() - started])

    waiting = threading.Thread(target=receive)
    waiting.start()
    time.sleep(0.3)  # the poll is waiting
    action()
    waiting.join(timeout=LONG_POLL + 5)
    return answer[0], answer[1]


def test_a_waiting_long_poll_asks_moto_again_only_when_its_wait_ends(
    cloud: LocalCloud, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sqs.models import SQSBackend

    # Given moto's ReceiveMessage counted
    calls: list[str] = []
    receive = SQSBackend.receive_message
    monkeypatch.setattr(
        SQSBackend,
        "receive_message",
        lambda self, name, *a, **k: calls.append(name) or receive(self, name, *a, **k),
    )
    # When a two-second long poll waits on an empty queue
    started = time.monotonic()
    messages = cloud.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages", [])
    # Then it waited its two seconds and moto was asked at its start and at its end only
    assert messages == [] and time.monotonic() - started >= 2
    assert len(calls) <= 2, calls


def test_a_message_sent_to_the_queue_wakes_the_long_poll(cloud: LocalCloud, queue: str) -> None:
    sqs = cloud.client("sqs")
    messages, seconds = waited_for(cloud, queue, lambda: sqs.send_message(QueueUrl=queue, MessageBody="sent"))
    assert [m["Body"] for m in messages] == ["sent"] and seconds < LONG_POLL / 2


def test_a_message_fanned_out_by_sns_wakes_the_long_poll(cloud: LocalCloud, queue: str) -> None:
    # Given the queue subscribed to a topic (SNS adds the message inside moto, with no SQS request), its
    # policy letting the topic send
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    topic = sns.create_topic(Name="fan-out")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    statement = {
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
    }  # fmt: skip
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps({"Statement": [statement]})})
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    # When a message is published while a long poll waits
    messages, seconds = waited_for(cloud, queue, lambda: sns.publish(TopicArn=topic, Message="published"))
    # Then the poll returns it at once
    assert [m["Body"] for m in messages] == ["published"] and seconds < LONG_POLL / 2


def test_a_delayed_message_is_returned_when_its_delay_ends(cloud: LocalCloud, queue: str) -> None:
    sqs = cloud.client("sqs")
    messages, seconds = waited_for(
        cloud, queue, lambda: sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=1)
    )
    assert [m["Body"] for m in messages] == ["later"]
    assert 0.9 <= seconds < LONG_POLL / 2


def test_moving_the_clock_past_a_delay_wakes_the_long_poll(cloud: LocalCloud, queue: str) -> None:
    # Given a message delayed 15 minutes
    cloud.client("sqs").send_message(QueueUrl=queue, MessageBody="in 15 min", DelaySeconds=900)
    # When the local clock moves past its delay while a long poll waits
    messages, seconds = waited_for(cloud, queue, lambda: cloud.clock.advance(901))
    # Then the poll returns it at once
    assert [m["Body"] for m in messages] == ["in 15 min"] and seconds < LONG_POLL / 2


def test_a_message_whose_visibility_ends_is_returned_again(cloud: LocalCloud, queue: str) -> None:
    # Given a message received with a one-second visibility timeout, and not deleted
    sqs = cloud.client("sqs")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": 1}))
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"]
    # When a long poll waits
    messages, seconds = waited_for(cloud, queue, lambda: None)
    # Then it gets the message back once its visibility timeout ends
    assert [m["MessageId"] for m in messages] == [first[0]["MessageId"]]
    assert seconds < LONG_POLL / 2
