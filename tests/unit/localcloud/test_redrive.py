"""Redrive from a dead-letter queue, as SQS's StartMessageMoveTask does, on moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from localcloud.sqs.redrive import (
    DEAD_LETTER_ATTRIBUTES,
    MAX_BATCH_BYTES,
    RedriveError,
    deduplication_id,
    find_source_queue,
    redrive,
)
from tests.unit.conftest import REGION, make_work_queue

pytestmark = pytest.mark.unit


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


class Intercepting:
    """The real client, except that send_message_batch is recorded and can be replaced."""

    def __init__(self, client: Any, send: Callable[..., Any] | None = None) -> None:
        self.client = client
        self.send = send or client.send_message_batch
        self.sent_batches: list[list[dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.sent_batches.append(kwargs["Entries"])
        return self.send(**kwargs)


def refusing(sqs: Any, refused: set[str]) -> Callable[..., dict[str, Any]]:
    """A send_message_batch whose destination reports the entries with these bodies as Failed."""

    def send(QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        accepted = [e for e in Entries if e["MessageBody"] not in refused]
        response = sqs.send_message_batch(QueueUrl=QueueUrl, Entries=accepted) if accepted else {}
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
            for e in Entries
            if e not in accepted
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}

    return send


def put(sqs: Any, url: str, bodies: list[str], **attributes: str) -> list[str]:
    message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
    return [
        sqs.send_message(QueueUrl=url, MessageBody=b, MessageAttributes=message_attributes)["MessageId"]
        for b in bodies
    ]


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Everything in the queue, in delivery order (deleting as it goes, so FIFO groups advance)."""
    messages: list[dict[str, Any]] = []
    while got := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        messages += got
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
    return messages


def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight)."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_moves_every_message_back_and_empties_the_dlq(sqs: Any) -> None:
    """StartMessageMoveTask with no destination: every dead letter returns to its source queue."""
    # Given 25 dead letters (more than one receive batch)
    queue = make_work_queue("orders")
    bodies = [f"m{i:02}" for i in range(25)]
    put(sqs, queue.dlq_url, bodies)
    # When the DLQ is redriven without naming the source
    report = redrive(sqs, queue.dlq_url)
    # Then the source found from its RedrivePolicy holds them all and the DLQ is empty
    assert (report.source_url, report.moved, report.failed) == (queue.url, 25, 0)
    assert sorted(m["Body"] for m in drain(sqs, queue.url)) == bodies
    assert counts(sqs, queue.dlq_url) == (0, 0)
    assert "moved 25" in report.summary()


def test_dead_letter_attributes_dropped_and_others_kept(sqs: Any) -> None:
    """Redrive keeps message attributes, minus the ones that labelled the message as failed."""
    # Given a traced dead letter carrying the consumer's failure attributes and a business attribute
    queue = make_work_queue("orders")
    attributes = {name: "x" for name in (*DEAD_LETTER_ATTRIBUTES, "tenant")}
    sqs.send_message(
        QueueUrl=queue.dlq_url,
        MessageBody="body",
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}},
    )
    client = Intercepting(sqs)
    # When it is redriven
    redrive(client, queue.dlq_url)
    # Then only the business attribute arrives in the source queue, sent with the trace header
    (message,) = drain(sqs, queue.url)
    assert message["MessageAttributes"] == {"tenant": {"DataType": "String", "StringValue": "x"}}
    (entry,) = client.sent_batches[0]
    assert entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == "Root=1-abc"


def test_dry_run_lists_without_moving_or_hiding(sqs: Any) -> None:
    """Like browsing the DLQ before a redrive: list what would move, and leave every message visible."""
    # Given 12 dead letters with failure reasons, one with a long body
    queue = make_work_queue("orders")
    put(sqs, queue.dlq_url, ["x" * 200] + [f"m{i}" for i in range(11)], **{"error-type": "ValidationError"})
    # When a dry run is made
    report = redrive(sqs, queue.dlq_url, dry_run=True)
    # Then it lists all 12 with previews and moves nothing, and every message is visible again
    assert (report.dry_run, report.moved, len(report.messages)) == (True, 0, 12)
    assert {m.error_type for m in report.messages} == {"ValidationError"}
    assert max(len(m.body) for m in report.messages) == 80
    assert counts(sqs, queue.dlq_url) == (12, 0)
    assert counts(sqs, queue.url) == (0, 0)


def test_failed_sends_stay_in_the_dlq(sqs: Any) -> None:
    """A message the destination refuses is not deleted from the DLQ (a move task never loses one)."""
    # Given 15 dead letters and a source queue that refuses three of them
    queue = make_work_queue("orders")
    bodies = [f"m{i:02}" for i in range(15)]
    put(sqs, queue.dlq_url, bodies)
    refused = {"m03", "m07", "m12"}
    # When the DLQ is redriven
    report = redrive(Intercepting(sqs, refusing(sqs, refused)), queue.dlq_url)
    # Then the refused three stay in the DLQ, visible, and the rest arrived: nothing is lost
    assert (report.moved, report.failed) == (12, 3)
    assert counts(sqs, queue.dlq_url) == (3, 0)
    assert {m["Body"] for m in drain(sqs, queue.dlq_url)} == refused
    assert sorted(m["Body"] for m in drain(sqs, queue.url)) == sorted(set(bodies) - refused)


def test_fifo_order_per_group_kept_with_a_new_deduplication_id(sqs: Any) -> None:
    """FIFO redrive keeps each message group's order and is not swallowed by deduplication."""
    # Given two interleaved groups of 12 dead letters each, and a copy of one body already in the source
    queue = make_work_queue("orders", fifo=True)
    ids: dict[str, str] = {}
    for i in range(12):
        for group in ("a", "b"):
            body = f"{group}{i:02}"
            ids[body] = sqs.send_message(QueueUrl=queue.dlq_url, MessageBody=body, MessageGroupId=group)[
                "MessageId"
            ]
    sqs.send_message(QueueUrl=queue.url, MessageBody="a00", MessageGroupId="other")
    # When the DLQ is redriven
    report = redrive(sqs, queue.dlq_url)
    # Then each group arrives in order, under its group id, deduplicated by its DLQ message id
    assert report.moved == 24
    arrived = [m for m in drain(sqs, queue.url) if m["Attributes"]["MessageGroupId"] != "other"]
    for group in ("a", "b"):
        in_group = [m["Body"] for m in arrived if m["Attributes"]["MessageGroupId"] == group]
        assert in_group == [f"{group}{i:02}" for i in range(12)]
    assert {m["Attributes"]["MessageDeduplicationId"] for m in arrived} == {
        deduplication_id(i) for i in ids.values()
    }


def test_fifo_refused_message_holds_back_its_group(sqs: Any) -> None:
    """A FIFO redrive never lets a later message of a group overtake one the destination refused."""
    # Given two interleaved groups of 6, and a source that refuses a02
    queue = make_work_queue("orders", fifo=True)
    for i in range(6):
        for group in ("a", "b"):
            sqs.send_message(QueueUrl=queue.dlq_url, MessageBody=f"{group}{i}", MessageGroupId=group)
    # When the DLQ is redriven
    report = redrive(Intercepting(sqs, refusing(sqs, {"a2"})), queue.dlq_url)
    # Then group b moved, group a moved up to a1 and the rest of it waits in the DLQ, in order
    assert (report.moved, report.remaining) == (8, 4)
    assert [m["Body"] for m in drain(sqs, queue.url)] == ["a0", "b0", "a1", "b1", "b2", "b3", "b4", "b5"]
    assert [m["Body"] for m in drain(sqs, queue.dlq_url)] == ["a2", "a3", "a4", "a5"]


def test_batches_respect_the_payload_limit(sqs: Any) -> None:
    """SendMessageBatch is limited to 10 entries and 256 KiB, so large messages go in smaller batches."""
    # Given ten 60 KiB dead letters
    queue = make_work_queue("orders")
    put(sqs, queue.dlq_url, [str(i) * 60 * 1024 for i in range(10)])
    client = Intercepting(sqs)
    # When they are redriven
    report = redrive(client, queue.dlq_url)
    # Then every batch sent fits the limit and all ten moved
    assert report.moved == 10
    assert len(client.sent_batches) > 1
    assert all(sum(len(e["MessageBody"]) for e in batch) <= MAX_BATCH_BYTES for batch in client.sent_batches)


def test_source_must_be_unambiguous(sqs: Any) -> None:
    """Like a move task without a destination, redrive needs exactly one queue dead-lettering here."""
    # Given a queue nobody dead-letters into, and a DLQ shared by two sources
    orphan = sqs.create_queue(QueueName="orphan")["QueueUrl"]
    queue = make_work_queue("orders")
    policy = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"])["Attributes"]
    sqs.create_queue(QueueName="second-source", Attributes=policy)
    # When / Then looking up the source fails with a hint, and an explicit source still works
    with pytest.raises(RedriveError, match=r"no queue uses .* pass the source queue URL explicitly"):
        find_source_queue(sqs, orphan)
    with pytest.raises(RedriveError, match="2 queues"):
        redrive(sqs, queue.dlq_url)
    assert redrive(sqs, queue.dlq_url, source_url=queue.url).source_url == queue.url


def test_limit_caps_the_messages_moved(sqs: Any) -> None:
    """Like a move task cancelled part-way (CancelMessageMoveTask): what was not moved stays in the DLQ."""
    # Given 25 dead letters
    queue = make_work_queue("orders")
    put(sqs, queue.dlq_url, [f"m{i}" for i in range(25)])
    # When at most 7 are redriven
    report = redrive(sqs, queue.dlq_url, limit=7)
    # Then 7 moved and 18 remain visible in the DLQ
    assert report.moved == 7
    assert counts(sqs, queue.url) == (7, 0)
    assert counts(sqs, queue.dlq_url) == (18, 0)


def test_chosen_messages_move_and_the_others_stay_visible(sqs: Any) -> None:
    """One message redriven by id (the dashboard's per-message button): found among the others, which
    stay in the DLQ and visible at once, not hidden for the move's visibility timeout."""
    # Given 25 dead letters
    queue = make_work_queue("orders")
    ids = put(sqs, queue.dlq_url, [f"m{i:02}" for i in range(25)])
    # When two of them are redriven by id, one near the end
    report = redrive(sqs, queue.dlq_url, message_ids=[ids[3], ids[21]])
    # Then just those two moved, and the 23 others are still in the DLQ, visible
    assert (report.moved, report.failed, report.remaining) == (2, 0, 23)
    assert sorted(m["Body"] for m in drain(sqs, queue.url)) == ["m03", "m21"]
    assert counts(sqs, queue.dlq_url) == (23, 0)
    # And an id that is not there moves nothing
    assert redrive(sqs, queue.dlq_url, message_ids=["not-a-dead-letter"]).moved == 0
    assert counts(sqs, queue.dlq_url) == (23, 0)
