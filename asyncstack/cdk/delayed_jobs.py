"""Delayed and scheduled jobs: SQS delays for the next 15 minutes, EventBridge Scheduler beyond.

``asyncstack.runtime.jobs.schedule_job`` picks the path; this construct provides what both need.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Acknowledgment, Duration, Stack, Token, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.tables import on_demand_table
from asyncstack.cdk.work_queue import WorkQueue, standalone_dead_letter_queue


class DelayedJobs(Construct):
    """A jobs queue consumed by ``worker``, a schedule group, the schedules' execution role, a DLQ for
    target invocations that keep failing (alarm at one message) and a table of each job's state.

    The schedules' role may only send to the jobs queue and the DLQ; functions that schedule jobs
    get exactly the scheduler, queue and table permissions they need from ``grant_scheduling``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker: lambda_.Function,
        job_types: Sequence[str],
        retry_attempts: int = 3,
        max_concurrency: int | None = 5,
        max_batching_window: Duration = Duration.seconds(1),
        max_record_duration: Duration | None = None,
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.job_types = tuple(job_types)
        self.retry_attempts = retry_attempts
        self.table = on_demand_table(self, "Table", "job_key", ttl="expires_at")
        self.work_queue = WorkQueue(
            self,
            "Queue",
            consumer=worker,
            max_concurrency=max_concurrency,
            max_batching_window=max_batching_window,
            max_record_duration=max_record_duration,
            alarm_actions=alarm_actions,
        )
        self.group = scheduler.CfnScheduleGroup(self, "Group")
        self.target_dead_letter_queue, self.target_dead_letter_alarm = standalone_dead_letter_queue(
            self,
            "TargetDeadLetterQueue",
            alarm_id="TargetDeadLetterAlarm",
            holds="the schedules' target deliveries that kept failing (their DeadLetterConfig)",
            alarm_description=f"Scheduled jobs of {self.node.path} could not be delivered to the jobs queue: "
            "inspect and resend",
            alarm_actions=alarm_actions,
        )
        account = Stack.of(self).account
        self.role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
            description=f"Lets the schedules of {self.node.path} deliver jobs to their queue",
        )
        self.work_queue.queue.grant_send_messages(self.role)
        self.target_dead_letter_queue.grant_send_messages(self.role)
        self.table.grant(worker, "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")
        worker.add_environment(contract.JOBS_TABLE_NAME, self.table.table_name)
        # A claim must outlast the run that holds it, and no run outlasts the worker's timeout.
        worker.add_environment(
            contract.JOBS_CLAIM_LEASE_SECONDS, str(int((worker.timeout or Duration.seconds(3)).to_seconds()))
        )
        worker.add_environment(contract.JOB_TYPES, ",".join(self.job_types))

    def grant_scheduling(self, function: lambda_.Function) -> None:
        """Let ``function`` schedule and cancel jobs with ``asyncstack.runtime.jobs`` (its configuration in env vars)."""
        queue = self.work_queue.queue
        for name, value in {
            contract.JOBS_QUEUE_URL: queue.queue_url,
            contract.JOBS_QUEUE_ARN: queue.queue_arn,
            contract.JOBS_SCHEDULE_GROUP: self.group.ref,
            contract.JOBS_SCHEDULER_ROLE_ARN: self.role.role_arn,
            contract.JOBS_DEAD_LETTER_ARN: self.target_dead_letter_queue.queue_arn,
            contract.JOBS_TABLE_NAME: self.table.table_name,
            contract.JOB_TYPES: ",".join(self.job_types),
        }.items():
            function.add_environment(name, value)
        queue.grant_send_messages(function)
        self.table.grant(
            function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        schedules = Stack.of(self).format_arn(
            service="scheduler", resource="schedule", resource_name=f"{self.group.ref}/*"
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule"],
                resources=[schedules],
            )
        )
        self.role.grant_pass_role(function.grant_principal)
        if function.role is not None:
            stack = Stack.of(self)
            # cdk-nag names the resource as synthesized: pseudo parameters unless the stack has an env.
            region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
            account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
            group_id = stack.get_logical_id(self.group)
            Validations.of(function.role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:{region}:"
                    f"{account}:schedule/<{group_id}>/*]",
                    reason="Schedules are created at run time, one per job, named from the job's key; "
                    "the wildcard covers only this construct's schedule group.",
                )
            )

    def add_recurring(
        self,
        construct_id: str,
        *,
        job_type: str,
        expression: str,
        timezone: str = "UTC",
        flexible_window: Duration | None = Duration.minutes(15),
        payload: Mapping[str, Any] | None = None,
    ) -> scheduler.CfnSchedule:
        """A recurring job (``cron(...)`` or ``rate(...)``). Each firing's job key includes the scheduled
        time, so a firing delivered twice runs once."""
        if job_type not in self.job_types:
            raise ValueError(f"{job_type!r} is not one of this construct's job types {list(self.job_types)}")
        # The message shape of asyncstack.runtime.jobs: an event envelope keyed by the job key.
        body = {
            "event_id": f"{construct_id}:<aws.scheduler.scheduled-time>",
            "type": job_type,
            "source": contract.JOB_MESSAGE_SOURCE,
            "occurred_at": "<aws.scheduler.scheduled-time>",
            "data": {**(payload or {}), contract.JOB_DUE_AT_FIELD: "<aws.scheduler.scheduled-time>"},
        }
        window = (
            scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                mode="FLEXIBLE", maximum_window_in_minutes=int(flexible_window.to_minutes())
            )
            if flexible_window
            else scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF")
        )
        return scheduler.CfnSchedule(
            self,
            construct_id,
            group_name=self.group.ref,
            schedule_expression=expression,
            schedule_expression_timezone=timezone,
            flexible_time_window=window,
            description=f"Recurring {job_type} job",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.work_queue.queue.queue_arn,
                role_arn=self.role.role_arn,
                input=json.dumps(body),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=self.retry_attempts, maximum_event_age_in_seconds=3600
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                    arn=self.target_dead_letter_queue.queue_arn
                ),
            ),
        )
