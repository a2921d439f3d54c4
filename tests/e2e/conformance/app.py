#!/usr/bin/env python3
"""ConformanceStack: small probe functions wired to the integrations the conformance tests check.

Every function runs ``probe/`` (one handler file, driven by the event) and records what it sees in
the observation table. Queues have short visibility timeouts and DLQs with a low maxReceiveCount
so redeliveries happen within seconds. Every name a test needs is a stack output.
Run by the CDK CLI from the repository root: ``cdk deploy ConformanceStack --app "python <this file>"``.
"""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PROBE_DIR = Path(__file__).resolve().parent / "probe"

# The queue probe's timeout; Lambda requires a source queue's visibility timeout to be at least this.
QUEUE_PROBE_TIMEOUT = Duration.seconds(2)
PARTIAL_VISIBILITY = Duration.seconds(2)
PARTIAL_MAX_RECEIVE_COUNT = 3
BATCHING_WINDOW = Duration.seconds(3)
MAXIMUM_CONCURRENCY = 2
TIMEOUT_PROBE_TIMEOUT = Duration.seconds(2)
ASYNC_RETRIES = 2
CONTEXT_MEMORY_MB = 256
CONTEXT_TIMEOUT = Duration.seconds(7)
FILTER_ATTRIBUTE = "kind"
FILTER_VALUE = "match"


class ConformanceStack(Stack):
    """Probe functions, queues, a topic and the observation table; every name the tests need is an output."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        table = dynamodb.Table(
            self,
            "ObservationTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            removal_policy=RemovalPolicy.DESTROY,
        )
        code = lambda_.Code.from_asset(str(PROBE_DIR), exclude=["__pycache__", "*.pyc"])

        def probe(
            construct_id: str, *, handler: str = "probe.handler", **options: object
        ) -> lambda_.Function:
            function = lambda_.Function(
                self,
                construct_id,
                runtime=lambda_.Runtime.PYTHON_3_11,
                handler=handler,
                code=code,
                environment={"PROBE_TABLE_NAME": table.table_name},
                **options,  # type: ignore[arg-type]
            )
            table.grant_read_write_data(function)
            CfnOutput(self, f"{construct_id}Name", value=function.function_name)
            return function

        def output(name: str, value: str) -> None:
            CfnOutput(self, name, value=value)

        # -- SQS event source mappings: the queue probe consumes every queue but the batching one --
        queue_probe = probe("QueueProbe", timeout=QUEUE_PROBE_TIMEOUT)

        def consumed_queue(
            construct_id: str, *, visibility: Duration, fifo: bool = False,
            max_receive_count: int | None = None, consumer: lambda_.Function = queue_probe,
            max_concurrency: int | None = MAXIMUM_CONCURRENCY, **mapping: object,
        ) -> sources.SqsEventSource:  # fmt: skip
            dead_letter = None
            if max_receive_count is not None:
                dlq = sqs.Queue(self, f"{construct_id}Dlq", fifo=fifo or None)
                dead_letter = sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count)
                output(f"{construct_id}DlqUrl", dlq.queue_url)
            queue = sqs.Queue(
                self,
                construct_id,
                fifo=fifo or None,
                content_based_deduplication=True if fifo else None,
                visibility_timeout=visibility,
                dead_letter_queue=dead_letter,
            )
            source = sources.SqsEventSource(queue, max_concurrency=max_concurrency, **mapping)  # type: ignore[arg-type]
            consumer.add_event_source(source)
            output(f"{construct_id}Url", queue.queue_url)
            output(f"{construct_id}Arn", queue.queue_arn)
            output(f"{construct_id}MappingId", source.event_source_mapping_id)
            return source

        # partial batch responses, receive counts, redrive and visibility timeouts
        consumed_queue(
            "PartialQueue",
            visibility=PARTIAL_VISIBILITY,
            max_receive_count=PARTIAL_MAX_RECEIVE_COUNT,
            # no batching window: each delivery invokes at once, so the probe's times are receive times
            batch_size=10,
            report_batch_item_failures=True,
        )
        # One batch at a time (reserved concurrency 1): batch boundaries come from the window alone, not
        # from which of several pollers happens to receive a message.
        consumed_queue(
            "BatchingQueue",
            visibility=Duration.seconds(10),
            consumer=probe("BatchingProbe", timeout=QUEUE_PROBE_TIMEOUT, reserved_concurrent_executions=1),
            max_concurrency=None,
            batch_size=10,
            max_batching_window=BATCHING_WINDOW,
        )
        consumed_queue("ConcurrencyQueue", visibility=Duration.seconds(10), batch_size=1)
        # Lambda does not support a batching window on FIFO queues.
        consumed_queue("FifoQueue", visibility=Duration.seconds(10), fifo=True, batch_size=10)
        consumed_queue("ToggleQueue", visibility=Duration.seconds(10), batch_size=10)
        output("PartialMaxReceiveCount", str(PARTIAL_MAX_RECEIVE_COUNT))
        output("PartialVisibilitySeconds", str(int(PARTIAL_VISIBILITY.to_seconds())))
        output("BatchingWindowSeconds", str(int(BATCHING_WINDOW.to_seconds())))
        output("MaximumConcurrency", str(MAXIMUM_CONCURRENCY))

        # -- SNS to SQS: a raw, filtered subscription and an enveloped, unfiltered one -------------
        # SignatureVersion 2 (SHA256): the version moto always signs with, so the envelope is the same on AWS.
        topic = sns.Topic(self, "Topic", signature_version="2")
        raw_queue = sqs.Queue(self, "RawQueue")
        envelope_queue = sqs.Queue(self, "EnvelopeQueue")
        topic.add_subscription(
            subscriptions.SqsSubscription(
                raw_queue,
                raw_message_delivery=True,
                filter_policy={
                    FILTER_ATTRIBUTE: sns.SubscriptionFilter.string_filter(allowlist=[FILTER_VALUE])
                },
            )
        )
        topic.add_subscription(subscriptions.SqsSubscription(envelope_queue))
        output("TopicArn", topic.topic_arn)
        output("RawQueueUrl", raw_queue.queue_url)
        output("EnvelopeQueueUrl", envelope_queue.queue_url)
        output("FilterAttribute", FILTER_ATTRIBUTE)
        output("FilterValue", FILTER_VALUE)

        # -- Lambda semantics -------------------------------------------------------------------
        probe("TimeoutProbe", timeout=TIMEOUT_PROBE_TIMEOUT)
        success_queue = sqs.Queue(self, "AsyncSuccessQueue")
        failure_queue = sqs.Queue(self, "AsyncFailureQueue")
        probe(
            "AsyncProbe",
            timeout=Duration.seconds(3),
            retry_attempts=ASYNC_RETRIES,
            on_success=destinations.SqsDestination(success_queue),
            on_failure=destinations.SqsDestination(failure_queue),
        )
        output("AsyncSuccessQueueUrl", success_queue.queue_url)
        output("AsyncFailureQueueUrl", failure_queue.queue_url)
        probe(
            "ContextProbe",
            timeout=CONTEXT_TIMEOUT,
            memory_size=CONTEXT_MEMORY_MB,
        ).add_environment("PROBE_MARK", "context")
        probe("ThrottleProbe", timeout=Duration.seconds(5), reserved_concurrent_executions=1)
        probe("WarmProbe", timeout=Duration.seconds(3))
        probe("ImportProbe", handler="needs_requests.handler", timeout=Duration.seconds(3))
        output("TableName", table.table_name)


app = App()
ConformanceStack(
    app,
    "ConformanceStack",
    env=Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    ),
    description="asyncstack: conformance probes for the local cloud",
)
app.synth()
