"""Synth-time rules for queue consumers: mistakes that lose or duplicate messages fail ``cdk synth``.

Applied as a CDK Aspect. Each rule reads the synthesized (L1) properties, so it also catches
queues and mappings built without the ``WorkQueue`` construct. An error names the construct
and the fix; ``cdk synth`` and ``cdk deploy`` refuse to continue while any is present.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jsii
from aws_cdk import Acknowledgment, Annotations, Aspects, CfnResource, IAspect, Stack, Token, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from asyncstack import contract

T = TypeVar("T", bound=CfnResource)

SQS_DEFAULT_VISIBILITY = 30
SQS_DEFAULT_RETENTION = 4 * 24 * 3600
LAMBDA_DEFAULT_TIMEOUT = 3
SQS_DEFAULT_BATCH_SIZE = 10


@jsii.implements(IAspect)
class QueueConsumerRules:
    """Checks every SQS event source mapping against its queue, DLQ and function."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, lambda_.CfnEventSourceMapping):
            return
        stack = Stack.of(node)
        queue = _resource(stack, node.event_source_arn, sqs.CfnQueue)
        function = _function(stack, node.function_name)
        if queue is None or function is None:
            return  # not an SQS mapping, or the queue/function lives outside this stack
        for problem in _problems(stack, node, queue, function):
            Annotations.of(node).add_error(problem)


def _problems(
    stack: Stack, mapping: lambda_.CfnEventSourceMapping, queue: sqs.CfnQueue, function: lambda_.CfnFunction
) -> list[str]:
    where = f"queue {queue.node.path} consumed by {function.node.path}"
    problems: list[str] = []
    timeout = _number(function.timeout, LAMBDA_DEFAULT_TIMEOUT)
    window = _number(mapping.maximum_batching_window_in_seconds, 0)
    visibility = _number(queue.visibility_timeout, SQS_DEFAULT_VISIBILITY)
    if (
        timeout is not None
        and window is not None
        and visibility is not None
        and visibility < 6 * timeout + window
    ):
        problems.append(
            f"{where}: visibility timeout {visibility} s is below 6 x function timeout + batching window "
            f"= {6 * timeout + window} s, so messages are delivered again while still being processed. "
            "Fix: use WorkQueue (it computes the timeout) or raise the queue's visibility timeout."
        )
    redrive = stack.resolve(queue.redrive_policy) if queue.redrive_policy is not None else None
    if not isinstance(redrive, dict) or "deadLetterTargetArn" not in redrive:
        problems.append(
            f"{where}: the queue has no dead-letter queue, so a poison message is retried until it expires. "
            "Fix: give it a dead_letter_queue (WorkQueue does) with a max_receive_count."
        )
    else:
        dlq = _resource(stack, redrive["deadLetterTargetArn"], sqs.CfnQueue)
        source_retention = _number(queue.message_retention_period, SQS_DEFAULT_RETENTION)
        dlq_retention = _number(dlq.message_retention_period, SQS_DEFAULT_RETENTION) if dlq else None
        if (
            dlq is not None
            and source_retention is not None
            and dlq_retention is not None
            and dlq_retention <= source_retention
        ):
            problems.append(
                f"{where}: its dead-letter queue {dlq.node.path} keeps messages {dlq_retention} s, not longer "
                f"than the source's {source_retention} s; SQS keeps a message's original enqueue time, so it "
                "can expire in the DLQ before anyone sees it. Fix: set the DLQ's retention_period longer "
                "(14 days is the maximum)."
            )
    problems += _shutdown_problems(stack, where, mapping, function, timeout)
    response_types = stack.resolve(mapping.function_response_types) or []
    if "ReportBatchItemFailures" not in response_types:
        problems.append(
            f"{where}: the event source mapping does not report batch item failures, so one failed record "
            "makes the whole batch run again. Fix: set report_batch_item_failures=True on the event source."
        )
    scaling = stack.resolve(mapping.scaling_config)
    maximum = scaling.get("maximumConcurrency") if isinstance(scaling, dict) else None
    reserved = _number(function.reserved_concurrent_executions, None)
    if isinstance(maximum, int) and reserved is not None and maximum > reserved:
        problems.append(
            f"{where}: the mapping's maximum concurrency {maximum} exceeds the function's reserved "
            f"concurrency {reserved}, so Lambda throttles the pollers and messages are retried towards the "
            "DLQ. Fix: lower max_concurrency or raise reserved_concurrent_executions."
        )
    return problems


def _shutdown_problems(
    stack: Stack,
    where: str,
    mapping: lambda_.CfnEventSourceMapping,
    function: lambda_.CfnFunction,
    timeout: int | None,
) -> list[str]:
    """A consumer that declares its longest record (its shutdown margin) must fit a full batch of them."""
    # The L2 Function renders its environment lazily, which the typed ``environment`` getter cannot
    # show from Python; the resource's resolved properties hold what will be synthesized.
    properties = stack.resolve(function._cfn_properties)
    variables = (properties.get("environment") or {}).get("variables") or {}
    margin_ms = _number(variables.get(contract.SHUTDOWN_MARGIN_MS), None)
    batch_size = _number(mapping.batch_size, SQS_DEFAULT_BATCH_SIZE)
    if margin_ms is None or timeout is None or batch_size is None:
        return []
    margin = margin_ms / 1000
    if margin >= timeout:
        return [
            f"{where}: its shutdown margin ({margin:g} s, the longest one record can take) is not below the "
            f"function timeout ({timeout} s), so no record would ever start. Fix: raise the timeout."
        ]
    if batch_size * margin > timeout:
        return [
            f"{where}: a batch of {batch_size} records of up to {margin:g} s each needs {batch_size * margin:g} s, "
            f"more than the function timeout ({timeout} s): the records it cannot start are released at the "
            "deadline and gain a receive each time, so they can reach the DLQ without ever being tried. "
            f"Fix: batch_size at most {int(timeout // margin)} (WorkQueue sizes it from max_record_duration) "
            "or a longer timeout."
        ]
    return []


def _number(value: Any, default: int | None) -> int | None:
    """A plain number, the default when unset, or None when it is a token known only at deploy."""
    if value is None:
        return default
    if Token.is_unresolved(value):
        return None
    return int(value)


def _function(stack: Stack, reference: Any) -> lambda_.CfnFunction | None:
    """The function a mapping invokes, directly or through an alias or a version."""
    function = _resource(stack, reference, lambda_.CfnFunction)
    if function is None:
        pointer = _resource(stack, reference, lambda_.CfnAlias) or _resource(
            stack, reference, lambda_.CfnVersion
        )
        if pointer is not None:
            function = _resource(stack, pointer.function_name, lambda_.CfnFunction)
    return function


def _logical_ids(resolved: Any) -> set[str]:
    """Every logical id a resolved value refers to with Ref or Fn::GetAtt, however deeply nested."""
    if isinstance(resolved, list):
        return {i for item in resolved for i in _logical_ids(item)}
    if not isinstance(resolved, dict):
        return set()
    ids = {resolved["Ref"]} if isinstance(resolved.get("Ref"), str) else set()
    if isinstance(resolved.get("Fn::GetAtt"), list):
        ids.add(resolved["Fn::GetAtt"][0])
    return ids | {i for value in resolved.values() for i in _logical_ids(value)}


def _resource(stack: Stack, reference: Any, kind: type[T]) -> T | None:
    """The resource of ``kind`` in ``stack`` that ``reference`` points at (through Ref/GetAtt), if any."""
    wanted = _logical_ids(stack.resolve(reference))
    if not wanted:
        return None
    for child in stack.node.find_all():
        if isinstance(child, kind) and stack.resolve(child.logical_id) in wanted:
            return child
    return None


def apply_rules(scope: IConstruct) -> None:
    """The checks every asyncstack app runs at synth: the queue-consumer rules, alarms that notify
    someone, and cdk-nag's AwsSolutions pack (its findings need a reason to be acknowledged)."""
    from cdk_nag import AwsSolutionsChecks

    from asyncstack.cdk.alarms import AlarmsNotify
    from asyncstack.cdk.packaging import deployed_locally

    Aspects.of(scope).add(QueueConsumerRules())
    Aspects.of(scope).add(AlarmsNotify())
    if deployed_locally(scope):
        Validations.of(scope).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason="A local cloud runs the functions on this machine's Python; deployments to AWS use the "
                "runtime the app's context names.",
            )
        )
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope))
