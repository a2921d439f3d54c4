"""Records one greeting per event: the consumer brings idempotency, poison handling and retries."""

from typing import Any

from asyncstack.runtime.aws import client
from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.events import EventEnvelope, StrictModel
from asyncstack.runtime.settings import table_name


class Greeting(StrictModel):
    name: str


def greet(envelope: EventEnvelope, greeting: Greeting) -> dict[str, str]:
    item = {"name": {"S": greeting.name}, "event_id": {"S": envelope.event_id}}
    client("dynamodb").put_item(TableName=table_name("GREETINGS_TABLE"), Item=item)
    return {"greeted": greeting.name}


# The write is keyed by name: a replay overwrites the same row, so no idempotency record is needed.
consumer = EventConsumer(
    name="greeter", accepts={"greeting.requested": Greeting}, process=greet, idempotent=False
)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return consumer.handle(event, context)
