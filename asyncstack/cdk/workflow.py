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
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from asyncstack.cdk.nag import acknowledge_wildcard, arn_of


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
