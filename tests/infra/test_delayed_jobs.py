"""The DelayedJobs construct: what the schedules may do, what a scheduling function may do, and the
recurring schedule's settings, asserted by property on a small stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from asyncstack.cdk.delayed_jobs import DelayedJobs

pytestmark = pytest.mark.infra


def _function(stack: Stack, construct_id: str) -> lambda_.Function:
    return lambda_.Function(
        stack,
        construct_id,
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
    )


@pytest.fixture(scope="module")
def template() -> Template:
    stack = Stack(App(), "Jobs", env={"account": "123456789012", "region": "eu-west-1"})
    worker = _function(stack, "Worker")
    producer = _function(stack, "Producer")
    jobs = DelayedJobs(stack, "Jobs", worker=worker, job_types=["reminder", "daily_summary"])
    jobs.grant_scheduling(producer)
    jobs.add_recurring("DailySummary", job_type="daily_summary", expression="cron(0 6 * * ? *)")
    return Template.from_stack(stack)


def _statements(template: Template, role_logical_prefix: str) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    return [
        statement
        for logical_id, policy in policies.items()
        if logical_id.startswith(role_logical_prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_schedules_role_can_only_be_assumed_by_the_scheduler_of_this_account(template: Template) -> None:
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "scheduler.amazonaws.com"},
                        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
                    }
                ]
            }
        },
    )


def test_the_schedules_role_may_only_send_to_the_jobs_queue_and_its_dead_letter_queue(
    template: Template,
) -> None:
    statements = _statements(template, "JobsSchedulerRoleDefaultPolicy")
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    resources = [json.dumps(s["Resource"]) for s in statements]
    assert len(resources) == 2
    assert any("JobsQueue" in r for r in resources)
    assert any("JobsTargetDeadLetterQueue" in r for r in resources)


def test_a_scheduling_function_may_manage_schedules_of_the_group_only_and_pass_the_role(
    template: Template,
) -> None:
    statements = _statements(template, "ProducerServiceRoleDefaultPolicy")
    scheduler = [s for s in statements if "scheduler:CreateSchedule" in s["Action"]]
    assert len(scheduler) == 1
    assert sorted(scheduler[0]["Action"]) == [
        "scheduler:CreateSchedule",
        "scheduler:DeleteSchedule",
        "scheduler:GetSchedule",
    ]
    assert "schedule/" in json.dumps(scheduler[0]["Resource"])
    assert "JobsGroup" in json.dumps(scheduler[0]["Resource"])
    assert any(s["Action"] == "iam:PassRole" for s in statements)


def test_the_producer_learns_where_jobs_go_from_its_environment(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "JOBS_QUEUE_URL": Match.any_value(),
                        "JOBS_QUEUE_ARN": Match.any_value(),
                        "JOBS_SCHEDULE_GROUP": Match.any_value(),
                        "JOBS_SCHEDULER_ROLE_ARN": Match.any_value(),
                        "JOBS_DEAD_LETTER_ARN": Match.any_value(),
                        "JOBS_TABLE_NAME": Match.any_value(),
                        "JOB_TYPES": "reminder,daily_summary",
                    }
                )
            }
        },
    )


def test_the_recurring_job_retries_then_dead_letters_and_keys_each_firing_by_its_time(
    template: Template,
) -> None:
    [schedule] = template.find_resources("AWS::Scheduler::Schedule").values()
    properties = schedule["Properties"]
    assert properties["ScheduleExpression"] == "cron(0 6 * * ? *)"
    assert properties["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    target = properties["Target"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert "JobsTargetDeadLetterQueue" in json.dumps(target["DeadLetterConfig"])
    body = json.loads(target["Input"])
    assert body["type"] == "daily_summary"
    assert body["event_id"] == "DailySummary:<aws.scheduler.scheduled-time>"
    assert body["data"] == {"due_at": "<aws.scheduler.scheduled-time>"}


def test_the_target_dead_letter_queue_alarms_at_one_message(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Threshold": 1,
            "AlarmDescription": Match.string_like_regexp("Scheduled jobs of .* could not be delivered"),
        },
    )


def test_a_recurring_job_of_an_unknown_type_is_refused() -> None:
    stack = Stack(App(), "Refused")
    jobs = DelayedJobs(stack, "Jobs", worker=_function(stack, "Worker"), job_types=["reminder"])
    with pytest.raises(ValueError, match="'daily_summary' is not one of this construct's job types"):
        jobs.add_recurring("Daily", job_type="daily_summary", expression="rate(1 day)")
