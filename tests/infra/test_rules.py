"""The synth rules of asyncstack/cdk/rules.py: each misconfigured queue consumer gets an error that says how to fix it.

Every test builds a tiny stack (an inline function, no assets, no cdk-nag) that is correct but
for one mistake, so each rule is shown to fire on its own and only for its own reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match, Template
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from aws_cdk.cx_api import CloudAssembly

from asyncstack.cdk.alarms import AlarmsNotify, AlarmTopic
from asyncstack.cdk.rules import QueueConsumerRules
from asyncstack.cdk.work_queue import WorkQueue, any_message_alarm
from tests.infra.conftest import STACK_NAME, SynthesizedApp

pytestmark = pytest.mark.infra


def inline_consumer(
    stack: Stack, timeout: Duration | None, reserved_concurrency: int | None
) -> lambda_.Function:
    """A tiny consumer function; inline code keeps these stacks fast to synthesize."""
    return lambda_.Function(
        stack,
        "Consumer",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
        timeout=timeout,
        reserved_concurrent_executions=reserved_concurrency,
    )


WHERE = "queue Rules/Queue/Resource consumed by Rules/Consumer/Resource"
# The correct baseline: 6 x 10 s + 1 s = 61 s of visibility; the DLQ outlives the source.
TEN_SECONDS = Duration.seconds(10)
ONE_SECOND = Duration.seconds(1)
SIXTY_ONE_SECONDS = Duration.seconds(61)
FOUR_DAYS = Duration.days(4)
FOURTEEN_DAYS = Duration.days(14)


def consumer_stack(
    *,
    function_timeout: Duration = TEN_SECONDS,
    batching_window: Duration = ONE_SECOND,
    visibility_timeout: Duration | None = SIXTY_ONE_SECONDS,
    with_dlq: bool = True,
    retention: Duration = FOUR_DAYS,
    dlq_retention: Duration = FOURTEEN_DAYS,
    report_batch_item_failures: bool = True,
    max_concurrency: int = 2,
    reserved_concurrency: int | None = 5,
    l1_mapping: bool = False,
    shutdown_margin: Duration | None = None,
) -> Stack:
    """A queue, its DLQ and a consumer, correct by default; each argument can introduce one mistake."""
    stack = Stack(App(), "Rules")
    dlq = sqs.Queue(stack, "DeadLetters", retention_period=dlq_retention) if with_dlq else None
    queue = sqs.Queue(
        stack,
        "Queue",
        visibility_timeout=visibility_timeout,
        retention_period=retention,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5) if dlq else None,
    )
    consumer = inline_consumer(stack, function_timeout, reserved_concurrency)
    if shutdown_margin is not None:  # the longest one record can take, as WorkQueue declares it
        consumer.add_environment("SHUTDOWN_MARGIN_MS", str(int(shutdown_margin.to_milliseconds())))
    if l1_mapping:
        # A mapping built without SqsEventSource: the rules read L1 properties, so they still apply.
        lambda_.EventSourceMapping(
            stack,
            "Mapping",
            target=consumer,
            event_source_arn=queue.queue_arn,
            batch_size=10,
            max_batching_window=batching_window,
            report_batch_item_failures=report_batch_item_failures,
            max_concurrency=max_concurrency,
        )
        queue.grant_consume_messages(consumer)
    else:
        consumer.add_event_source(
            SqsEventSource(
                queue,
                max_batching_window=batching_window,
                report_batch_item_failures=report_batch_item_failures,
                max_concurrency=max_concurrency,
            )
        )
    Aspects.of(stack).add(QueueConsumerRules())
    return stack


def error_messages(stack: Stack) -> list[str]:
    return [
        str(message.entry.data)
        for message in Annotations.from_stack(stack).find_error("*", Match.any_value())
    ]


def assert_only_error(stack: Stack, pattern: str, path: str = "*") -> None:
    """``stack`` has one error only, on ``path``: it names the construct, matches ``pattern``, has a fix."""
    regexp = f"^{re.escape(WHERE)}: {pattern}.* Fix: .+"
    Annotations.from_stack(stack).has_error(path, Match.string_like_regexp(regexp))
    assert len(error_messages(stack)) == 1, error_messages(stack)


def test_a_correct_consumer_gets_no_error() -> None:
    # Given the default consumer stack: the baseline every other test breaks in one way
    stack = consumer_stack()
    # When it is synthesized with the rules
    # Then no rule complains (so each error below comes from the one mistake it introduces)
    assert error_messages(stack) == []


def test_a_visibility_timeout_below_six_function_timeouts_plus_the_window_is_an_error() -> None:
    # Given a 10 s function behind a 1 s window on a queue that hides messages for only 60 s (< 61 s)
    stack = consumer_stack(visibility_timeout=Duration.seconds(60))
    # Then the rule names the queue and the consumer, the numbers, and the fix
    assert_only_error(
        stack, r"visibility timeout 60 s is below 6 x function timeout \+ batching window = 61 s"
    )


def test_the_sqs_default_visibility_timeout_is_checked_too() -> None:
    # Given a queue that leaves the visibility timeout at the SQS default (30 s)
    stack = consumer_stack(visibility_timeout=None)
    # Then the rule compares the default against 6 x 10 + 1
    assert_only_error(stack, r"visibility timeout 30 s is below .* = 61 s")


def test_a_queue_without_a_dead_letter_queue_is_an_error() -> None:
    # Given a consumed queue with no redrive policy
    stack = consumer_stack(with_dlq=False)
    # Then the rule says a poison message would be retried until it expires
    assert_only_error(stack, "the queue has no dead-letter queue")


def test_a_dead_letter_queue_that_does_not_outlive_its_source_is_an_error() -> None:
    # Given a DLQ that keeps messages 4 days, as long as its source
    stack = consumer_stack(retention=Duration.days(4), dlq_retention=Duration.days(4))
    # Then the rule names the DLQ and both retention periods
    assert_only_error(
        stack,
        "its dead-letter queue Rules/DeadLetters/Resource keeps messages 345600 s, "
        "not longer than the source's 345600 s",
    )


def test_a_mapping_without_report_batch_item_failures_is_an_error() -> None:
    # Given an L2 EventSourceMapping (not SqsEventSource) that does not report batch item failures
    stack = consumer_stack(report_batch_item_failures=False, l1_mapping=True)
    # Then the rule fires on that mapping's resource
    assert_only_error(
        stack, "the event source mapping does not report batch item failures", path="/Rules/Mapping/Resource"
    )


def test_a_mapping_allowed_more_concurrency_than_the_function_has_reserved_is_an_error() -> None:
    # Given a mapping that may scale to 5 concurrent batches for a function with 2 reserved
    stack = consumer_stack(max_concurrency=5, reserved_concurrency=2)
    # Then the rule names both numbers
    assert_only_error(
        stack, "the mapping's maximum concurrency 5 exceeds the function's reserved concurrency 2"
    )


def test_a_batch_of_worst_case_records_that_outlasts_the_timeout_is_an_error() -> None:
    """The defect this guards: webhook deliveries (up to ~21 s each) came 10 to a 60 s function, so a
    batch of slow receivers timed it out, and records released at the deadline gained a receive each
    time until they reached the DLQ without ever being attempted."""
    # Given a consumer that declares records of up to 2 s, 10 to a batch, with a 10 s timeout
    stack = consumer_stack(shutdown_margin=Duration.seconds(2))
    # Then the rule names the sizes and the largest batch that fits
    assert_only_error(
        stack, r"a batch of 10 records of up to 2 s each needs 20 s, more than the function timeout \(10 s\)"
    )
    assert "batch_size at most 5" in error_messages(stack)[0]


def test_a_shutdown_margin_as_long_as_the_timeout_is_an_error() -> None:
    stack = consumer_stack(shutdown_margin=TEN_SECONDS)
    assert_only_error(stack, r"its shutdown margin \(10 s, the longest one record can take\) is not below")


def test_a_work_queue_sizes_its_batch_from_the_longest_record() -> None:
    # Given a 60 s consumer whose records take up to 21 s (a webhook delivery to a slow receiver)
    stack = Stack(App(), "Rules")
    consumer = inline_consumer(stack, Duration.seconds(60), reserved_concurrency=5)
    work = WorkQueue(stack, "Work", consumer=consumer, max_record_duration=Duration.seconds(21))
    Aspects.of(stack).add(QueueConsumerRules())
    # Then the batch is as large as fits (2), the margin is the record's worst case, and no rule complains
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"BatchSize": 2})
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"SHUTDOWN_MARGIN_MS": "21000"})}},
    )
    assert work.consumer is consumer
    assert error_messages(stack) == []


@pytest.mark.parametrize(
    ("fifo", "function_timeout"),
    [(False, Duration.seconds(30)), (True, None)],
    ids=["standard-30s", "fifo-default-timeout"],
)
def test_a_work_queue_satisfies_every_rule(fifo: bool, function_timeout: Duration | None) -> None:
    # Given consumers wired with WorkQueue, standard and FIFO, with and without an explicit timeout
    stack = Stack(App(), "Rules")
    consumer = inline_consumer(stack, function_timeout, reserved_concurrency=5)
    WorkQueue(stack, "Work", consumer=consumer, fifo=fifo, max_concurrency=5)
    Aspects.of(stack).add(QueueConsumerRules())
    # When it is synthesized with the rules
    # Then no rule complains
    assert error_messages(stack) == []


def test_the_real_stack_breaks_no_rule(synthesized: SynthesizedApp) -> None:
    # Given the real app, synthesized once for the session
    artifact = CloudAssembly(str(synthesized.outdir)).get_stack_artifact(STACK_NAME)
    # And build_app applies the rules to the whole app (so an empty result means "checked, clean")
    assert QueueConsumerRules in [type(aspect) for aspect in Aspects.of(synthesized.app).all]
    # Then its cloud assembly carries no error for the CLI to refuse
    problems = [
        (message.id, message.entry.data) for message in artifact.messages if message.level.value == "ERROR"
    ]
    assert problems == []


def test_no_cdk_cli_is_needed_to_see_the_errors(tmp_path: Path) -> None:
    # Given an app whose consumer breaks a rule, synthesized in process into a folder
    stack = consumer_stack(with_dlq=False)
    app = stack.node.root
    assert isinstance(app, App)
    # When the app is synthesized (app.synth() does not raise: it is `cdk synth` that refuses)
    assembly = app.synth()
    # Then the error is already in the cloud assembly, where the CLI would read it from
    messages = [
        str(message.entry.data)
        for message in assembly.get_stack_artifact(stack.artifact_id).messages
        if message.level.value == "ERROR"
    ]
    assert len(messages) == 1
    assert messages[0].startswith(f"{WHERE}: the queue has no dead-letter queue")
    on_disk = json.loads(Path(assembly.directory, f"{stack.artifact_id}.metadata.json").read_text())
    assert [
        entry["data"] for entries in on_disk.values() for entry in entries if entry["type"] == "aws:cdk:error"
    ] == messages
    # And the assertions library reads the same error without any subprocess
    Annotations.from_stack(stack).has_error("*", Match.string_like_regexp("no dead-letter queue.*Fix: "))


def test_a_consumer_behind_an_alias_is_checked_too() -> None:
    # Given a queue with no DLQ and the SQS default visibility, consumed through a function alias
    stack = Stack(App(), "Rules")
    queue = sqs.Queue(stack, "Queue")
    consumer = lambda_.Function(
        stack,
        "Consumer",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
        timeout=Duration.seconds(30),
    )
    alias = lambda_.Alias(stack, "Live", alias_name="live", version=consumer.current_version)
    alias.add_event_source(SqsEventSource(queue))
    Aspects.of(stack).add(QueueConsumerRules())
    # Then the rules see through the alias to the function and report the missing DLQ
    Annotations.from_stack(stack).has_error("*", Match.string_like_regexp("no dead-letter queue.*Fix: "))


def test_an_alarm_that_notifies_nobody_is_an_error_and_one_on_the_alarm_topic_is_not() -> None:
    # Given two alarms on a queue, one of them given the alarm topic's actions
    stack = Stack(App(), "Alarms")
    queue = sqs.Queue(stack, "Queue")
    any_message_alarm(stack, "Silent", queue, "nobody hears this one")
    heard = any_message_alarm(stack, "Heard", queue, "this one notifies the topic")
    heard.add_alarm_action(*AlarmTopic(stack, "Alarms").actions)
    Aspects.of(stack).add(AlarmsNotify())
    # Then only the silent one is an error, naming it and the fix
    assert error_messages(stack) == [
        "alarm Alarms/Silent/Resource notifies nobody. Fix: pass the stack's alarm actions "
        "(AlarmTopic.actions) as alarm_actions to the construct that creates it."
    ]
