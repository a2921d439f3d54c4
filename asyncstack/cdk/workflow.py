"""A Step Functions workflow with the operational defaults every workflow here needs.

Logs go to a ``/aws/vendedlogs/states/`` log group (the prefix Step Functions' log delivery may
write to without growing the account's resource policy per group), X-Ray tracing is on, and
three alarms fire on the first failed, timed-out or aborted execution.

Standard or Express is the caller's choice and must be deliberate:

* ``STANDARD``: exactly-once execution per name (starting the same name again is refused or
  returns the running one), up to a year long, ``.waitForTaskToken`` callbacks, a full history.
  Billed per state transition.
* ``EXPRESS``: at-least-once, at most five minutes, no task-token callbacks, no per-name dedupe.
  Billed per request and duration: far cheaper for short, high-volume, idempotent flows.

``step`` is a Lambda task that retries what a later try can fix, with capped, jittered backoff. A
Lambda task's error name is the exception's class name, so the lists name classes of
``asyncstack.runtime``: a step that raises ``TransientError`` (or a subclass named in ``retry_on``)
is retried, anything else fails the step for its ``Catch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from asyncstack.cdk.nag import acknowledge_wildcard, arn_of, explain_synchronous_invoker, skip_checkov
from asyncstack.cdk.python_function import LOGS_ENCRYPTED_BY_SERVICE
from asyncstack.runtime.errors import TransientError

__all__ = ["LAMBDA_TRANSIENT_ERRORS", "STEP_TRANSIENT_ERRORS", "Workflow", "step", "step_invocation"]

# Lambda's own transient failures, per the Step Functions guidance for Lambda tasks.
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
LAMBDA_RETRY_ATTEMPTS = 6
# What a step raises for "try again" (asyncstack.runtime.errors.TransientError, which
# asyncstack.runtime.workflows.transient_aws_errors makes of AWS failures worth retrying), plus a step
# that timed out or whose process died: steps are idempotent, so running one again is safe.
STEP_TRANSIENT_ERRORS = (
    TransientError.__name__, "States.Timeout", "Sandbox.Timedout", "Runtime.ExitError", "Runtime.Unknown",
)  # fmt: skip


def step_invocation(scope: Construct) -> dict[str, str]:
    """How the Lambda tasks of the workflow in ``scope`` invoke their functions, for the template's checkov
    skips (``explain_synchronous_invoker``); every such task retries Lambda.TooManyRequestsException."""
    return {
        "invoker": f"the Step Functions Lambda tasks of {scope.node.path} (RequestResponse: the workflow "
        "retries or catches a failure)",
        "concurrency": "one invocation per running execution at a time, and a throttled invocation fails "
        "the task with Lambda.TooManyRequestsException, which the task retries with backoff",
    }


def step(
    scope: Construct,
    construct_id: str,
    *,
    function: lambda_.IFunction,
    payload: Mapping[str, object],
    result_path: str | None,
    timeout: Duration = Duration.seconds(30),
    retries: int = 3,
    max_delay: Duration = Duration.seconds(8),
    retry_on: Sequence[str] = (),
) -> tasks.LambdaInvoke:
    """A Lambda task with ``payload``, its answer at ``result_path`` (None: discarded), retried on the
    transient errors and on ``retry_on`` (the names of ``TransientError`` subclasses the function raises)."""
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(dict(payload)),
        result_selector={"result": sfn.JsonPath.object_at("$.Payload")},
        result_path=result_path if result_path is not None else sfn.JsonPath.DISCARD,
        task_timeout=sfn.Timeout.duration(timeout),
        retry_on_service_exceptions=False,
    )
    explain_synchronous_invoker(function, **step_invocation(scope))
    # Lambda's own failures (throttling above all) have a retrier of their own, as the Step Functions
    # guidance for Lambda tasks has it: a busy function must not use up the attempts the step has for
    # its own transient failures, and send a saga into compensation.
    task.add_retry(
        errors=list(LAMBDA_TRANSIENT_ERRORS),
        interval=Duration.seconds(2),
        backoff_rate=2,
        max_attempts=LAMBDA_RETRY_ATTEMPTS,
        max_delay=Duration.seconds(30),
        jitter_strategy=sfn.JitterType.FULL,
    )
    task.add_retry(
        errors=[*STEP_TRANSIENT_ERRORS, *retry_on],
        interval=Duration.seconds(1),
        backoff_rate=2,
        max_attempts=retries,
        max_delay=max_delay,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


class Workflow(Construct):
    """``definition`` as a state machine with vendedlogs logging, tracing and failure alarms.

    ``reason`` says why this workflow is Standard or Express; it becomes the state machine's
    comment, so the choice is visible where the workflow is operated.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: sfn.IChainable,
        kind: sfn.StateMachineType,
        reason: str,
        timeout: Duration,
        log_level: sfn.LogLevel = sfn.LogLevel.ALL,
        include_execution_data: bool = False,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        if kind == sfn.StateMachineType.EXPRESS and timeout.to_seconds() > 300:
            raise ValueError(f"{construct_id}: Express workflows run at most 5 minutes, not {timeout}")
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{self.node.path.replace('/', '-')}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        if not include_execution_data:  # with it, the logs hold inputs and outputs: the check stays
            skip_checkov(
                self.log_group,
                "CKV_AWS_158",
                f"{LOGS_ENCRYPTED_BY_SERVICE} Execution data (inputs and outputs) is kept out of this "
                "workflow's logs (includeExecutionData false): they hold states, events and errors.",
            )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=kind,
            comment=reason,
            timeout=timeout,
            tracing_enabled=True,
            # Execution data (inputs and outputs: customer details) stays out of the logs by default.
            logs=sfn.LogOptions(
                destination=self.log_group, level=log_level, include_execution_data=include_execution_data
            ),
        )
        acknowledge_wildcard(
            self.state_machine.role,
            "Resource::*",
            "X-Ray (PutTraceSegments, GetSamplingRules...) and CloudWatch Logs delivery (CreateLogDelivery...) "
            "support no resource-level permissions.",
        )
        watched = {
            "FailedAlarm": (self.state_machine.metric_failed, "failed"),
            "TimedOutAlarm": (self.state_machine.metric_timed_out, "timed out"),
            "AbortedAlarm": (self.state_machine.metric_aborted, "was aborted"),
        }
        self.alarms = {
            name: metric(period=Duration.minutes(1), statistic="Sum").create_alarm(
                self,
                name,
                alarm_description=f"An execution of {self.node.path} {what}: read its history",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for name, (metric, what) in watched.items()
        }
        for alarm in self.alarms.values():
            alarm.add_alarm_action(*alarm_actions)

    def acknowledge_invoked(self, *functions: lambda_.IFunction) -> None:
        """The Lambda tasks' grants cover each function's versions and aliases (``ARN:*``), nothing else."""
        for function in functions:
            acknowledge_wildcard(
                self.state_machine.role,
                f"Resource::{arn_of(function)}:*",
                "Step Functions' Lambda tasks may invoke the function's versions and aliases; the grant "
                "names this one function.",
            )

    @property
    def arn(self) -> str:
        return self.state_machine.state_machine_arn
