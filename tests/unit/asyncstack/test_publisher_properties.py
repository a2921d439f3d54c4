"""Properties of the batch publisher's splitting (asyncstack/runtime/publisher.py): for any messages, the requests
sent to SQS and SNS respect the batch limits as AWS counts them, keep order, lose and duplicate nothing, and a
message over the limit alone is refused with ``PublishError``. Fake clients record the requests: no AWS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asyncstack.runtime.publisher import (
    AWS_MAX_BATCH_ENTRIES,
    DEFAULT_MAX_BATCH_BYTES,
    BatchPublisher,
    OutgoingMessage,
    PublishError,
)

pytestmark = pytest.mark.unit

PURE = settings(max_examples=100, deadline=None)
LIMIT = DEFAULT_MAX_BATCH_BYTES  # 256 KiB: one SNS PublishBatch, or one SQS batch at the classic limit

# Characters of 1, 2, 3 and 4 UTF-8 bytes: the limit is in bytes, not characters.
WIDE = ("x", "é", "€", "😀")


class RecordingClient:
    """A boto3 SQS and SNS client double: keeps every batch request and accepts every entry."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    def _accept(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(entries)
        return {
            "Successful": [{"Id": e["Id"], "MessageId": f"m-{len(self.requests)}-{e['Id']}"} for e in entries]
        }

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return self._accept(Entries)

    def publish_batch(
        self, *, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self._accept(PublishBatchRequestEntries)


def aws_size(entry: dict[str, Any]) -> int:
    """A request entry's size as SQS and SNS count it: the body, and each attribute's name, data type and value,
    in UTF-8 bytes (computed from the request, not with the publisher's own ``message_size``)."""
    body = entry.get("MessageBody", entry.get("Message"))
    size = len(body.encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
    return size


def body_of(entry: dict[str, Any]) -> str:
    return str(entry.get("MessageBody", entry.get("Message")))


Target = Callable[[RecordingClient], BatchPublisher]
TARGETS: dict[str, Target] = {
    "sqs": lambda client: BatchPublisher.for_queue(
        "https://sqs.us-east-1.amazonaws.com/1/q",
        client=client,
        max_interval_seconds=None,  # type: ignore[arg-type]
    ),
    "sns": lambda client: BatchPublisher.for_topic(
        "arn:aws:sns:us-east-1:1:t",
        client=client,
        max_interval_seconds=None,  # type: ignore[arg-type]
    ),
}


# What SQS accepts in a value: no control characters but tab and newlines, no surrogates, no U+FFFE/U+FFFF.
SQS_TEXT = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"),
    min_size=1, max_size=30,
)  # fmt: skip


@st.composite
def messages(draw: st.DrawFn, max_bytes: int = LIMIT) -> OutgoingMessage:
    """A message of any size up to ``max_bytes`` (mostly small, sometimes most of a batch), with attributes."""
    char = draw(st.sampled_from(WIDE))
    length = draw(st.integers(1, 40) | st.integers(1, max_bytes // len(char.encode()) - 4096))
    attributes = draw(
        st.dictionaries(
            st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True), SQS_TEXT, max_size=3,
        )
    )  # fmt: skip
    return OutgoingMessage(body=char * length, attributes=attributes)


def numbered(batch: list[OutgoingMessage]) -> list[OutgoingMessage]:
    """A serial number keeps every body distinct, so order and duplicates can be checked from the bodies."""
    return [OutgoingMessage(body=f"{i}:{m.body}", attributes=m.attributes) for i, m in enumerate(batch)]


@PURE
@given(batch=st.lists(messages(), max_size=30).map(numbered), target=st.sampled_from(sorted(TARGETS)))
@example(batch=numbered([OutgoingMessage(body="x" * 100_000)] * 3), target="sqs")  # 2 fit, the 3rd does not
@example(batch=numbered([OutgoingMessage(body="m")] * 21), target="sns")  # 10 + 10 + 1
def test_batches_respect_the_limits_keep_order_and_lose_nothing(
    batch: list[OutgoingMessage], target: str
) -> None:
    # Given any messages, each small enough to be sent
    client = RecordingClient()
    publisher = TARGETS[target](client)
    # When they are added one by one, then the publisher is closed
    entry_ids = [publisher.add(message) for message in batch]
    publisher.close()
    # Then every request has at most 10 entries and 256 KiB as AWS counts them, with unique ids
    for request in client.requests:
        assert 1 <= len(request) <= AWS_MAX_BATCH_ENTRIES
        assert sum(aws_size(entry) for entry in request) <= LIMIT
        assert len({entry["Id"] for entry in request}) == len(request)
    # And the messages went out once each, in order, each with its own result
    sent = [body_of(entry) for request in client.requests for entry in request]
    assert sent == [message.body for message in batch]
    assert [r.entry_id for r in publisher.results] == entry_ids and len(set(entry_ids)) == len(batch)
    assert all(result.ok and result.attempts == 1 for result in publisher.results)
    # And a batch was sent early only when the next message would not have fitted it
    for request, following in zip(client.requests, client.requests[1:], strict=False):
        full = len(request) == AWS_MAX_BATCH_ENTRIES
        assert full or sum(aws_size(entry) for entry in request) + aws_size(following[0]) > LIMIT


@PURE
@given(
    body_bytes=st.integers(LIMIT - 64, LIMIT + 64),
    attribute=st.none() | st.tuples(st.sampled_from(["a", "trace-id"]), st.text("v", min_size=1, max_size=8)),
    target=st.sampled_from(sorted(TARGETS)),
)
@example(body_bytes=LIMIT, attribute=None, target="sqs")
@example(body_bytes=LIMIT - 6, attribute=("a", "v"), target="sns")  # 262138 + 1 + "String" + 1 > the limit
def test_a_message_alone_over_the_limit_is_refused_and_changes_nothing(
    body_bytes: int, attribute: tuple[str, str] | None, target: str
) -> None:
    # Given a message near the limit: its body and its attribute's name, data type and value
    attributes = dict([attribute]) if attribute else {}
    message = OutgoingMessage(body="x" * body_bytes, attributes=attributes)
    size = body_bytes + sum(len(name) + len("String") + len(value) for name, value in attributes.items())
    client = RecordingClient()
    publisher = TARGETS[target](client)
    publisher.add("before")
    # When it is added
    if size > LIMIT:
        # Then over the limit it is refused with PublishError, and what was buffered still goes out alone
        with pytest.raises(PublishError, match="larger than the batch limit"):
            publisher.add(message)
        publisher.close()
        assert [[body_of(e) for e in request] for request in client.requests] == [["before"]]
    else:
        # Then at or under it, it is sent: with the one before if both fit, else in a batch of its own
        publisher.add(message)
        publisher.close()
        both_fit = len("before") + size <= LIMIT
        assert [len(request) for request in client.requests] == ([2] if both_fit else [1, 1])
        assert aws_size(client.requests[-1][-1]) == size
