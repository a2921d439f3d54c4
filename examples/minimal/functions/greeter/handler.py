"""Records one greeting per event: the consumer brings idempotency, poison handling and retries."""

from typing import Any

from pydantic import Field

from asyncstack.runtime.aws import client
from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.events import EventEnvelope, StrictModel
from asyncstack.runtime.settings import EnvironmentSettings, load


class Settings(EnvironmentSettings):
    table: str = Field(validation_alias="GREETINGS_TABLE", min_length=1)  # set by app.py


class Greeting(StrictModel):
    name: str


def greet(envelope: EventEnvelope, greeting: Greeting) -> dict[str, str]:
    item = {"name": {"S": greeting.name}, "event_id": {"S": envelope.event_id}}
    client("dynamodb").put_item(TableName=load(Settings).table, Item=item)
    return {"greeted": greeting.name}


# The write is keyed by name: a replay overwrites the same row, so no idempotency record is needed.
consumer = EventConsumer(
    name="greeter", accepts={"greeting.requested": Greeting}, process=greet, idempotent=False
)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return consumer.handle(event, context)
