"""moto in-process: every unit test gets a fresh fake AWS account, no network."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from asyncstack.runtime import settings
from asyncstack.runtime.aws import client, reset_clients
from localcloud.awslambda.lambda_context import LocalLambdaContext
from localcloud.sqs.records import lambda_event

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AsyncStackTest",
        "POWERTOOLS_SERVICE_NAME": "unit",
        "AWS_LAMBDA_FUNCTION_NAME": "unit-test-function",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_SNS",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        reset_clients()
        settings.load.cache_clear()
        yield
    reset_clients()
    settings.load.cache_clear()


@dataclass
class WorkQueueFixture:
    url: str
    arn: str
    dlq_url: str

    @property
    def sqs(self) -> Any:
        return boto3.client("sqs", region_name=REGION)

    def send(self, body: str, **attributes: str) -> str:
        return self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )["MessageId"]

    def receive_event(self, limit: int = 10) -> dict[str, Any]:
        """A Lambda SQS event made of real received messages (real receipt handles)."""
        messages: list[dict[str, Any]] = []
        while len(messages) < limit:
            got = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(10, limit - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages += got
        return lambda_event(messages, queue_arn=self.arn, region=REGION)

    def dead_letters(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not got:
                return messages
            messages += got

    def counts(self) -> dict[str, int]:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]
        return {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        }


def make_work_queue(name: str, *, fifo: bool = False) -> WorkQueueFixture:
    sqs = boto3.client("sqs", region_name=REGION)
    suffix = ".fifo" if fifo else ""
    fifo_attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=fifo_attributes)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=f"{name}{suffix}",
        Attributes={
            **fifo_attributes,
            "VisibilityTimeout": "181",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return WorkQueueFixture(url=url, arn=arn, dlq_url=dlq_url)


def make_table(name: str, key: str, *, ttl: str | None = None) -> str:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if ttl:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
    return name


@pytest.fixture
def work_queue(aws: None, monkeypatch: pytest.MonkeyPatch) -> WorkQueueFixture:
    """A source queue with a DLQ (redrive after 5 receives) and the consumer environment pointing at it."""
    queue = make_work_queue("orders-work")
    monkeypatch.setenv("QUEUE_URL", queue.url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue.dlq_url)
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", make_table("idempotency", "id", ttl="expiration"))
    return queue


@pytest.fixture
def tables(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    names = {
        "INVENTORY_TABLE_NAME": make_table("inventory", "pk"),
        "OUTBOX_TABLE_NAME": make_table("outbox", "message_id"),
        "ANALYTICS_TABLE_NAME": make_table("analytics", "event_id"),
    }
    for variable, name in names.items():
        monkeypatch.setenv(variable, name)
    return names


def context(remaining_seconds: float = 30.0, name: str = "unit-test-function") -> LocalLambdaContext:
    return LocalLambdaContext(function_name=name, timeout_seconds=remaining_seconds)


@dataclass
class AwsFaults:
    """Fails the code's own AWS calls (the cached ``asyncstack.runtime.aws`` clients) as a throttled or failing service
    does once the SDK's retries are spent: the call raises ``ClientError`` with ``code``."""

    injected: list[str]

    def fail(
        self,
        service: str,
        operation: str,
        *,
        times: int = 1,
        code: str = "ThrottlingException",
        when: Callable[[dict[str, Any]], bool] = lambda _params: True,
    ) -> None:
        remaining = [times]

        def maybe_fail(params: dict[str, Any], **_kwargs: Any) -> None:
            if remaining[0] > 0 and when(params):
                remaining[0] -= 1
                self.injected.append(f"{operation}:{code}")
                raise ClientError({"Error": {"Code": code, "Message": "injected by the test"}}, operation)

        client(service).meta.events.register(f"provide-client-params.{service}.{operation}", maybe_fail)


@pytest.fixture
def aws_faults(aws: None) -> AwsFaults:
    return AwsFaults(injected=[])
