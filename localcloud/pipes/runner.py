"""EventBridge Pipes run locally: every RUNNING pipe reads its source, filters, enriches and delivers to
its target, as Pipes does.

Sources: SQS queues (batches of up to ``BatchSize`` gathered within ``MaximumBatchingWindowInSeconds``;
a delivered batch is deleted, a failed one comes back after its visibility timeout and the queue's
redrive policy dead-letters it; messages no filter matches are deleted), DynamoDB streams and Kinesis
streams (the stream pollers of ``localcloud.awslambda.streams``: order per shard, starting position,
retries, ``OnPartialBatchItemFailure: AUTOMATIC_BISECT``, ``DeadLetterConfig``,
``ParallelizationFactor``; Kinesis records flat, as Pipes gives them). ``FilterCriteria``
as for event source mappings. Enrichment: a Lambda function or an Express state machine, given the
batch as a JSON array (after ``EnrichmentParameters.InputTemplate``); what it returns is the batch
the target gets (an empty list: nothing). Targets: SQS, SNS, Lambda (``REQUEST_RESPONSE`` or
``FIRE_AND_FORGET``), Step Functions (``FIRE_AND_FORGET`` or ``REQUEST_RESPONSE``) and EventBridge
buses, each event (or the batch, for Lambda and Step Functions) rendered by
``TargetParameters.InputTemplate`` (``<$.path>`` placeholders; a JSON body is read as JSON).
Batch sizes default to 10 for SQS and 100 for streams, as for Lambda's mappings.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from localcloud.awslambda.runtime import InvocationError, LocalRuntime
from localcloud.awslambda.streams import ShardPoller, ShardPollerSet, StreamMappingView, StreamSource
from localcloud.poller_sets import Backoff, Poller
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION, local_client
from localcloud.sqs import filters
from localcloud.sqs.records import RECEIVE_ATTRIBUTES, lambda_record

PLACEHOLDER = re.compile(r"<(\$[^>]*)>")
PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')


@dataclass(frozen=True)
class PipeView:
    name: str
    source: str
    source_parameters: dict[str, Any]
    enrichment: str | None
    enrichment_parameters: dict[str, Any]
    target: str
    target_parameters: dict[str, Any]
    running: bool
    role: str

    @classmethod
    def of(cls, pipe: Any) -> PipeView:
        return cls(
            name=pipe.name, source=pipe.source, source_parameters=pipe.source_parameters or {},
            enrichment=pipe.enrichment or None, enrichment_parameters=pipe.enrichment_parameters or {},
            target=pipe.target, target_parameters=pipe.target_parameters or {},
            running=pipe.desired_state == "RUNNING", role=pipe.role_arn,
        )  # fmt: skip

    @property
    def filters(self) -> tuple[dict[str, Any], ...]:
        return tuple(filters.patterns(self.source_parameters.get("FilterCriteria")))


def pipes() -> dict[str, PipeView]:
    from moto.pipes.models import pipes_backends

    with MOTO_LOCK:
        return {name: PipeView.of(pipe) for name, pipe in pipes_backends[ACCOUNT][REGION].pipes.items()}


def resolve(document: Any, path: str) -> Any:
    """The value at a JSON path (``$.body.order.id``, ``$.items[0]``); a string holding a JSON object
    or array is read as JSON on the way (an SQS body)."""
    value = document
    for name, index in PATH_PART.findall(path[1:]):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        value = value.get(name) if name and isinstance(value, dict) else (
            value[int(index)] if index and isinstance(value, list) and int(index) < len(value) else None
        )  # fmt: skip
    return value


def render(template: str, event: Any) -> Any:
    """An input template applied to one event: in a JSON template ``<$.path>`` inside a string is the
    value as text and elsewhere the value as JSON; in a text template, the value as text. A result
    that is JSON is returned parsed."""

    structured = template.lstrip()[:1] in ("{", "[")  # else a text template: values go in as text

    def substitute(match: re.Match[str]) -> str:
        value = resolve(event, match[1])
        text = value if isinstance(value, str) else json.dumps(value)
        if not structured:
            return text
        if len(UNESCAPED_QUOTE.findall(template, 0, match.start())) % 2 == 0:  # outside a string
            return json.dumps(value)
        return json.dumps(text)[1:-1]

    text = PLACEHOLDER.sub(substitute, template)
    try:
        return json.loads(text)
    except ValueError:
        return text


class Delivery:
    """A pipe's enrichment and target: what a batch of source events becomes, and where it goes."""

    def __init__(self, pipe: PipeView, runtime: LocalRuntime, client: Callable[[str], Any]) -> None:
        self.pipe = pipe
        self.runtime = runtime
        self.client = client

    def __call__(self, events: list[dict[str, Any]]) -> None:
        """Raises InvocationError when the enrichment or the target fails (the batch is retried)."""
        try:
            self._to_target(self._enriched(events))
        except ClientError as error:
            raise InvocationError("Pipes.TargetError", str(error)) from error

    def _enriched(self, events: list[Any]) -> list[Any]:
        arn = self.pipe.enrichment
        if not arn:
            return events
        template = self.pipe.enrichment_parameters.get("InputTemplate")
        batch = [render(template, e) for e in events] if template else events
        service = arn.split(":")[2]
        if service == "lambda":
            result = self.runtime.invoke(arn, batch, wait=60.0)
        elif service == "states":
            result = self._sync_execution(arn, batch)
        else:
            raise InvocationError(
                "Pipes.UnsupportedEnrichment",
                f"{arn}: the local cloud enriches with Lambda or Step Functions",
            )
        return result if isinstance(result, list) else ([] if result is None else [result])

    def _sync_execution(self, arn: str, payload: Any) -> Any:
        execution = self.client("stepfunctions").start_sync_execution(
            stateMachineArn=arn, input=json.dumps(payload)
        )
        if execution["status"] != "SUCCEEDED":
            raise InvocationError(
                execution.get("error") or "States.ExecutionFailed", execution.get("cause") or ""
            )
        return json.loads(execution.get("output") or "null")

    def _to_target(self, events: list[Any]) -> None:
        if not events:
            return
        template = self.pipe.target_parameters.get("InputTemplate")
        bodies = [render(template, e) for e in events] if template else events
        send = {"sqs": self._to_queue, "sns": self._to_topic, "lambda": self._to_function,
                "states": self._to_state_machine, "events": self._to_bus}.get(self.pipe.target.split(":")[2])  # fmt: skip
        if send is None:
            raise InvocationError(
                "Pipes.UnsupportedTarget", f"{self.pipe.target}: not a target the local cloud delivers to"
            )
        send(self.pipe.target, self.pipe.target_parameters, bodies)

    def _to_queue(self, arn: str, params: dict[str, Any], bodies: list[Any]) -> None:
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        fifo = {k: v for k, v in (params.get("SqsQueueParameters") or {}).items() if v}
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=_text(body), **fifo)

    def _to_topic(self, arn: str, params: dict[str, Any], bodies: list[Any]) -> None:
        for body in bodies:
            self.client("sns").publish(TopicArn=arn, Message=_text(body))

    def _to_function(self, arn: str, params: dict[str, Any], bodies: list[Any]) -> None:
        if (params.get("LambdaFunctionParameters") or {}).get("InvocationType") == "FIRE_AND_FORGET":
            self.client("lambda").invoke(
                FunctionName=arn, InvocationType="Event", Payload=json.dumps(bodies).encode()
            )
        else:
            self.runtime.invoke(arn, bodies, wait=60.0)

    def _to_state_machine(self, arn: str, params: dict[str, Any], bodies: list[Any]) -> None:
        if (params.get("StepFunctionStateMachineParameters") or {}).get(
            "InvocationType"
        ) == "REQUEST_RESPONSE":
            self._sync_execution(arn, bodies)
        else:
            self.client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps(bodies))

    def _to_bus(self, arn: str, params: dict[str, Any], bodies: list[Any]) -> None:
        bus = params.get("EventBridgeEventBusParameters") or {}
        kind = self.pipe.source.split(":")[2]
        self.client("events").put_events(Entries=[{
            "EventBusName": arn, "Source": bus.get("Source") or f"Pipe {self.pipe.name}",
            "DetailType": bus.get("DetailType") or f"Event from aws:{kind}", "Detail": json.dumps(body),
        } for body in bodies])  # fmt: skip


def flat_record(event: dict[str, Any]) -> dict[str, Any]:
    """A stream record as Pipes hands it on: Kinesis fields (``data``, ``partitionKey``, ...) beside the
    record's others, where Lambda nests them under ``kinesis``; DynamoDB records as Lambda sees them."""
    fields = event.get("kinesis")
    if not isinstance(fields, dict):
        return event
    return {**{k: v for k, v in event.items() if k != "kinesis"}, **fields}


def _text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


class SqsPipeWorker:
    """A pipe whose source is an SQS queue."""

    def __init__(
        self, name: str, runtime: LocalRuntime, clients: Callable[[PipeView, bool], Callable[[str], Any]],
        stop: threading.Event,
    ) -> None:  # fmt: skip
        """``clients(pipe, validate)``: the clients the pipe acts with (as its role)."""
        self.name = name
        self.runtime = runtime
        self.clients = clients
        self.stop = stop
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=f"pipe-{name[:20]}", daemon=True)

    def _run(self) -> None:
        lookup = local_client("sqs", self.runtime.endpoint)  # Pipes knows its queue by ARN: no role needed
        backoff = Backoff()
        while not self.stop.is_set():
            pipe = pipes().get(self.name)
            if pipe is None:
                return
            if not pipe.running:
                self.stop.wait(0.5)
                continue
            try:
                url = lookup.get_queue_url(QueueName=pipe.source.rsplit(":", 1)[-1])["QueueUrl"]
                # Unvalidated: the rest of a batching window is a fraction of a second, which the local
                # endpoint honours and the SQS API's whole seconds cannot express (as for the SQS pollers).
                sqs = self.clients(pipe, False)("sqs")
                messages = self._gather(pipe, sqs, url)
                backoff.reset()
                if messages:
                    self.busy = True
                    self._deliver(pipe, sqs, url, messages)
            except Exception as error:  # undeleted messages come back by themselves
                if self.stop.is_set():
                    return
                print(f"[localcloud] pipe {self.name}: {error!r}; retrying in {backoff.seconds:g} s")
                backoff.wait(self.stop)
            finally:
                self.busy = False

    def _gather(self, pipe: PipeView, sqs: Any, url: str) -> list[dict[str, Any]]:
        settings = pipe.source_parameters.get("SqsQueueParameters") or {}
        size, window = (
            int(settings.get("BatchSize") or 10),
            float(settings.get("MaximumBatchingWindowInSeconds") or 0),
        )
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < size and not self.stop.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, size - len(messages)),
                WaitTimeSeconds=20 if left is None else round(left, 3), AttributeNames=RECEIVE_ATTRIBUTES,
                MessageAttributeNames=["All"],
            ).get("Messages", [])  # fmt: skip
            if not got and deadline is None:
                return []
            messages += got
            if deadline is None:
                deadline = time.monotonic() + window
        return messages

    def _deliver(self, pipe: PipeView, sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
        passing = [m for m in messages if filters.passes(m["Body"], pipe.filters)]
        self._delete(sqs, url, [m for m in messages if m not in passing])
        if not passing:
            return
        try:
            Delivery(pipe, self.runtime, self.clients(pipe, True))(
                [lambda_record(m, queue_arn=pipe.source, region=REGION) for m in passing]
            )
        except InvocationError as error:
            print(
                f"[localcloud] pipe {self.name}: the batch failed, it comes back after its visibility timeout: {error}"
            )
            return
        self._delete(sqs, url, passing)

    @staticmethod
    def _delete(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages[start : start + 10])
            ])  # fmt: skip


def stream_view(pipe: PipeView) -> StreamMappingView:
    """A stream-sourced pipe's settings in the shape the stream pollers read."""
    settings = (
        pipe.source_parameters.get("DynamoDBStreamParameters")
        or pipe.source_parameters.get("KinesisStreamParameters")
        or {}
    )
    return StreamMappingView(
        uuid=f"pipe:{pipe.name}", function_arn="", source_arn=pipe.source, enabled=pipe.running,
        batch_size=int(settings.get("BatchSize") or 100),
        batching_window=float(settings.get("MaximumBatchingWindowInSeconds") or 0),
        starting_position=str(settings.get("StartingPosition") or "TRIM_HORIZON"), starting_timestamp=None,
        maximum_retry_attempts=int(settings.get("MaximumRetryAttempts", -1)),
        maximum_record_age=float(settings.get("MaximumRecordAgeInSeconds", -1)),
        bisect=settings.get("OnPartialBatchItemFailure") == "AUTOMATIC_BISECT",
        report_batch_item_failures=False,
        on_failure=(settings.get("DeadLetterConfig") or {}).get("Arn"),
        filters=pipe.filters, parallelization_factor=max(1, int(settings.get("ParallelizationFactor") or 1)),
        role=pipe.role,
    )  # fmt: skip


class Pipes(ShardPollerSet):
    """Keeps one worker per running pipe (one per shard for stream sources)."""

    name = "pipes"

    def __init__(
        self, runtime: LocalRuntime, sources: Sequence[StreamSource], send: Callable[[str, dict[str, Any]], None],
        role_client: Callable[[str, str, bool], Any],
    ) -> None:  # fmt: skip
        """``role_client(service, role ARN, validate)``: a client acting as a pipe's role (every pipe has
        one), which Pipes reads the source and calls the enrichment and target with."""
        super().__init__(sources)
        self.runtime = runtime
        self.role_client = role_client
        self.send = send

    def clients(self, pipe: PipeView, validate: bool = True) -> Callable[[str], Any]:
        return lambda service: self.role_client(service, pipe.role, validate)

    def wanted(self) -> dict[tuple[str, str], Any]:
        wanted: dict[tuple[str, str], StreamSource | None] = {}  # (pipe, shard) -> its stream; SQS: None
        for name, pipe in pipes().items():
            if pipe.source.startswith("arn:aws:sqs:"):
                wanted[name, ""] = None
            else:
                wanted |= self.shards(name, pipe.source)
        return wanted

    def create(self, key: tuple[str, str], spec: Any, stop: threading.Event) -> list[Poller]:
        name, shard = key
        if spec is None:
            return [SqsPipeWorker(name, self.runtime, self.clients, stop)]
        return [self._shard_poller(name, shard, spec, stop)]

    def _shard_poller(
        self, name: str, shard: str, source: StreamSource, stop: threading.Event
    ) -> ShardPoller:
        def view() -> StreamMappingView | None:
            pipe = pipes().get(name)
            return None if pipe is None else stream_view(pipe)

        def deliver(_: StreamMappingView, events: list[dict[str, Any]]) -> None:
            pipe = pipes().get(name)
            if pipe is not None:
                Delivery(pipe, self.runtime, self.clients(pipe))([flat_record(e) for e in events])

        return ShardPoller(
            f"pipe:{name}", shard, source=source, runtime=self.runtime, send=self.send, stop=stop,
            written=self.signal, view=view, deliver=deliver,
        )  # fmt: skip
