"""Properties of event decoding (asyncstack/runtime/events.py) and of the consumer that uses it: any body an SQS
record can carry decodes to an envelope or raises a ``NonRetryableError``, never anything else, and an envelope
survives being encoded and decoded. Pure functions, except the consumer property (moto DynamoDB, fake SQS)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.errors import MalformedJsonError, NonRetryableError, SchemaInvalidError
from asyncstack.runtime.events import MAX_NESTING, EventEnvelope, StrictModel, decode_event
from asyncstack.runtime.settings import ConsumerSettings
from tests.unit.conftest import REGION, context, make_table

pytestmark = pytest.mark.unit

PURE = settings(max_examples=200, deadline=None)
WITH_MOTO = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Ping(StrictModel):
    n: int


class Anything(BaseModel):
    """Accepts any ``data`` object: the round trip is about the envelope, not one event type."""

    model_config = ConfigDict(extra="allow", frozen=True)


ACCEPTS: dict[str, type[BaseModel]] = {"ping": Ping, "anything": Anything}

# -- strategies --------------------------------------------------------------------------------------------

# What JSON can carry: no NaN or Infinity (pydantic writes them as null, so they would not round-trip).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
event_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
short_text = st.text(min_size=1, max_size=128)
# JSON writes offsets in whole minutes, Python allows any below a day: both kinds are generated.
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
instants = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.builds(timezone, offsets)
)
envelopes = st.builds(
    EventEnvelope,
    event_id=event_ids,
    type=st.just("anything"),
    source=short_text,
    occurred_at=instants,
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)


def _nested(depth: int, leaf: Any = 0) -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


def _event_with_data(data_json: str, event_id: str = "e-1") -> str:
    """An envelope's JSON around ``data_json``, written out (json.dumps would recurse as deep as the data)."""
    head = {
        "event_id": event_id,
        "type": "anything",
        "source": "tests",
        "occurred_at": "2030-01-01T00:00:00Z",
    }
    return json.dumps(head)[:-1] + f', "data": {{"x": {data_json}}}}}'


@st.composite
def envelope_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like an envelope, each field valid, missing, or any JSON value."""
    fields = {
        "event_id": event_ids | json_values,
        "type": st.sampled_from(sorted(ACCEPTS)) | json_values,
        "source": short_text | json_values,
        "occurred_at": st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00"]) | json_values,
        "data": st.fixed_dictionaries({"n": st.integers() | json_values}) | json_values,
    }
    body = {name: draw(values) for name, values in fields.items() if draw(st.booleans() | st.just(True))}
    body.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return body


def _sns(message: str) -> str:
    return json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": message})


json_texts = (
    json_values.map(json.dumps)
    | st.floats().map(json.dumps)  # NaN and Infinity: Python writes and reads them, JSON has no such thing
    | envelope_like().map(json.dumps)
    | st.integers(0, 5000).map(_nested)  # deeper than the recursion limit reaches the decoder too
    | st.integers(4000, 5000).map(lambda digits: _nested(2, int("9" * 4000)) if digits % 2 else "9" * digits)
)
bodies = st.binary() | st.text() | json_texts | json_texts.map(_sns)


def outcome(body: Any) -> tuple[EventEnvelope, BaseModel] | NonRetryableError:
    try:
        return decode_event(body, ACCEPTS)
    except NonRetryableError as error:
        return error


# -- decoding ----------------------------------------------------------------------------------------------


@PURE
@given(body=bodies)
@example(body=b"\xff\xfe\x00")  # not UTF-8
@example(body="[" * 100_000)  # deeper than the interpreter's recursion limit
@example(body="1" * 5000)  # an integer over Python's 4300 digit limit
def test_any_body_decodes_or_is_refused_as_non_retryable(body: Any) -> None:
    # Given any body an SQS record can carry: bytes, text, any JSON, envelope-like objects, SNS-wrapped ones
    # When it is decoded
    result = outcome(body)
    # Then it is an envelope with data of its type's model, or the typed non-retryable refusal, nothing else
    if isinstance(result, NonRetryableError):
        assert str(result)
        return
    envelope, data = result
    assert isinstance(envelope, EventEnvelope)
    assert isinstance(data, ACCEPTS[envelope.type])


@PURE
@given(envelope=envelopes)
def test_an_envelope_survives_encoding_and_decoding(envelope: EventEnvelope) -> None:
    # Given any valid envelope
    # When it is encoded as the publishers encode it, then decoded (raw, and wrapped by SNS)
    body = envelope.model_dump_json()
    decoded, data = decode_event(body, ACCEPTS)
    wrapped, _ = decode_event(_sns(body), ACCEPTS)
    # Then it is the same envelope: same fields, same instant
    assert decoded == envelope == wrapped
    assert decoded.occurred_at == envelope.occurred_at
    assert data.model_dump() == envelope.data


@PURE
@given(depth=st.integers(0, 3 * MAX_NESTING))
def test_a_body_nested_too_deep_to_serialise_again_is_refused(depth: int) -> None:
    # Given an envelope whose data nests ``depth`` levels below the body
    body = _event_with_data(_nested(depth))
    # When it is decoded
    result = outcome(body)
    # Then it decodes, and serialises again, exactly when it nests no deeper than the limit
    if depth + 2 <= MAX_NESTING:
        assert not isinstance(result, NonRetryableError)
        assert result[0].model_dump_json()
    else:
        assert isinstance(result, SchemaInvalidError)


# Found by the properties above: each escaped as an untyped exception, so the consumer retried a poison pill.


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00", "[" * 100_000, _sns("[" * 100_000), "1" * 5000, _event_with_data("7" * 4400)],
    ids=[
        "bytes-not-utf8",
        "deeper-than-recursion-limit",
        "sns-wrapped-too-deep",
        "huge-int",
        "huge-int-inside",
    ],
)
def test_bodies_python_cannot_parse_are_malformed_json(body: Any) -> None:
    # Given a body json.loads fails on with other than JSONDecodeError
    # When it is decoded
    # Then it is refused as malformed JSON (dead-lettered at once), not a crash that is retried
    with pytest.raises(MalformedJsonError):
        decode_event(body, ACCEPTS)


def test_an_offset_json_cannot_write_is_kept_in_utc() -> None:
    # Given an envelope made in Python with an offset of seconds (historic zones have them)
    occurred = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone(timedelta(seconds=30)))
    envelope = EventEnvelope(event_id="e", type="anything", source="s", occurred_at=occurred, data={})
    # When it is encoded and decoded
    decoded, _ = decode_event(envelope.model_dump_json(), ACCEPTS)
    # Then the instant is kept (pydantic would have written "+00:00", 30 s off)
    assert envelope.occurred_at.tzinfo == UTC
    assert decoded.occurred_at == occurred


# -- the consumer ------------------------------------------------------------------------------------------


class RecordingSqs:
    """The consumer's SQS calls, recorded: a dead letter or a retry of the record under test."""

    def __init__(self) -> None:
        self.dead_letters: list[dict[str, Any]] = []
        self.retries: list[dict[str, Any]] = []

    def send_message(self, **params: Any) -> dict[str, Any]:
        self.dead_letters.append(params)
        return {"MessageId": str(uuid.uuid4())}

    def change_message_visibility(self, **params: Any) -> None:
        self.retries.append(params)


@pytest.fixture
def idempotency_table(aws: None) -> str:
    return make_table("idempotency", "id", ttl="expiration")


def _record(body: str) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    return {
        "messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:work", "awsRegion": REGION,
    }  # fmt: skip


valid_bodies = envelopes.map(lambda envelope: envelope.model_dump_json())
deep_bodies = st.builds(_event_with_data, st.integers(0, 900).map(_nested), event_ids)


@WITH_MOTO
@given(body=st.text() | json_texts | json_texts.map(_sns) | valid_bodies | deep_bodies)
@example(body=_event_with_data(_nested(300)))  # decodes, but pydantic cannot serialise it for idempotency
def test_the_consumer_processes_or_dead_letters_any_body_and_never_retries_it(
    idempotency_table: str, body: str
) -> None:
    # Given an idempotent consumer and a record with any body (SQS bodies are text)
    sqs = RecordingSqs()
    processed: list[str] = []
    consumer = EventConsumer(
        name=f"properties-{uuid.uuid4()}",  # a fresh idempotency key space per example
        accepts=ACCEPTS,
        process=lambda envelope, _data: processed.append(envelope.event_id) or None,
        sqs=sqs,
        settings_factory=lambda: ConsumerSettings(
            queue_url="https://sqs/work", dead_letter_queue_url="https://sqs/dlq",
            idempotency_table_name=idempotency_table,
        ),
    )  # fmt: skip
    # When the batch is handled
    response = consumer.handle({"Records": [_record(body)]}, context())
    # Then the record is not retried: it was processed once, or dead-lettered with its typed reason
    assert response == {"batchItemFailures": []}
    assert sqs.retries == []
    assert len(processed) + len(sqs.dead_letters) == 1
    if sqs.dead_letters:
        attributes = sqs.dead_letters[0]["MessageAttributes"]
        assert attributes["error-type"]["StringValue"] in {
            "MalformedJson", "SchemaInvalid", "UnknownEventType", "ConflictingDuplicate"
        }  # fmt: skip
