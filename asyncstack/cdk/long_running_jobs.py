"""Long-running jobs: a worker that works in chunks, driven by a Standard workflow that resumes it.

The worker records progress and a checkpoint in the jobs table after every chunk and returns
before its own deadline with ``done: false``; the workflow invokes it again until it says
``done: true``. A crash or a timeout fails only that invocation: the workflow retries it with
backoff and the next run starts from the checkpoint, so at most one chunk is redone. After the
last retry the worker marks the job failed with the error, and the execution fails.

Why Step Functions and not a worker that re-queues itself: the retry after a crash starts
within seconds instead of after an SQS visibility timeout, the whole job has one deadline and
one history to read, and the job id as execution name makes starting a job twice start it once.
Standard, not Express: a job may run longer than Express's five minutes.

The worker runs ``asyncstack.runtime.long_running`` (its settings: ``LongRunningWorkerSettings``);
functions that start jobs get ``grant_start``, functions that read or update them ``grant_jobs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.buckets import private_bucket
from asyncstack.cdk.nag import acknowledge_wildcard, arn_of, explain_synchronous_invoker
from asyncstack.cdk.tables import on_demand_table
from asyncstack.cdk.workflow import LAMBDA_TRANSIENT_ERRORS, STEP_TRANSIENT_ERRORS, Workflow, step_invocation
from asyncstack.runtime.errors import TransientError

__all__ = ["LongRunningJobs"]


class LongRunningJobs(Construct):
    """A jobs table, a results bucket, and the workflow that drives ``worker`` until a job is done.

    ``worker`` gets the table's and the bucket's names (``asyncstack.contract.LONG_RUNNING_*``) and
    read-write access to both, the bucket under ``results_prefix`` only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker: lambda_.Function,
        access_logs: s3.Bucket,
        results_prefix: str = "results/",
        max_job_duration: Duration = Duration.hours(6),
        run_retries: int = 5,
        keep_results: Duration = Duration.days(30),
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        if not results_prefix.endswith("/") or results_prefix.startswith("/"):
            raise ValueError(f"results_prefix must be a folder like 'results/', not {results_prefix!r}")
        self.table = on_demand_table(self, "Table", "job_id")
        self.bucket = private_bucket(self, "Results", access_logs=access_logs, expire_after=keep_results)
        # Every write of a run is a conditional UpdateItem that returns the item: nothing else is needed.
        self.table.grant(worker, "dynamodb:UpdateItem")
        worker.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects(f"{results_prefix}*")],
            )
        )
        acknowledge_wildcard(
            worker.role or worker,
            f"Resource::{arn_of(self.bucket)}/{results_prefix}*",
            f"Each job writes its own objects under {results_prefix}<job id>/; the prefix is as narrow as "
            "a policy written before the jobs exist can be.",
        )
        worker.add_environment(contract.LONG_RUNNING_JOBS_TABLE_NAME, self.table.table_name)
        worker.add_environment(contract.LONG_RUNNING_RESULTS_BUCKET, self.bucket.bucket_name)

        run_timeout = Duration.seconds((worker.timeout or Duration.seconds(3)).to_seconds() + 30)
        run = tasks.LambdaInvoke(
            self,
            "RunChunks",
            lambda_function=worker,
            payload=sfn.TaskInput.from_object(
                {"action": contract.LONG_RUNNING_RUN_ACTION, "job_id": sfn.JsonPath.string_at("$.job_id")}
            ),
            result_selector={"done.$": f"$.Payload.{contract.LONG_RUNNING_DONE_FIELD}"},
            result_path="$.run",
            task_timeout=sfn.Timeout.duration(run_timeout),
            retry_on_service_exceptions=False,
        )
        run.add_retry(
            errors=[*STEP_TRANSIENT_ERRORS, *LAMBDA_TRANSIENT_ERRORS],
            interval=Duration.seconds(2),
            backoff_rate=2,
            max_attempts=run_retries,
            max_delay=Duration.minutes(1),
            jitter_strategy=sfn.JitterType.FULL,
        )
        mark_failed = tasks.LambdaInvoke(
            self,
            "MarkFailed",
            lambda_function=worker,
            payload=sfn.TaskInput.from_object(
                {
                    "action": contract.LONG_RUNNING_FAIL_ACTION,
                    "job_id": sfn.JsonPath.string_at("$.job_id"),
                    "error": sfn.JsonPath.object_at("$.failure"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            retry_on_service_exceptions=False,
        )
        # Marking the job failed (and queueing its webhook) must not be lost to a passing error.
        mark_failed.add_retry(
            errors=[TransientError.__name__, *LAMBDA_TRANSIENT_ERRORS],
            interval=Duration.seconds(2),
            backoff_rate=2,
            max_attempts=5,
            jitter_strategy=sfn.JitterType.FULL,
        )
        failed = sfn.Fail(self, "JobFailed", error_path="$.failure.Error", cause_path="$.failure.Cause")
        mark_failed.next(failed)
        run.add_catch(mark_failed, errors=["States.ALL"], result_path="$.failure")
        finished = sfn.Choice(self, "Finished?").when(
            sfn.Condition.boolean_equals("$.run.done", True), sfn.Succeed(self, "JobSucceeded")
        )
        finished.otherwise(run)
        self.workflow = Workflow(
            self,
            "Workflow",
            definition=run.next(finished),
            kind=sfn.StateMachineType.STANDARD,
            reason="Standard: a job may outlive Express's 5 minutes, and the job id (the execution name) "
            "starts each job once.",
            timeout=max_job_duration,
            alarm_actions=alarm_actions,
        )
        self.workflow.acknowledge_invoked(worker)
        explain_synchronous_invoker(worker, **step_invocation(self))

    def grant_jobs(self, function: lambda_.Function, *actions: str) -> None:
        """Let ``function`` use the jobs table with ``actions`` (it learns the table's name)."""
        function.add_environment(contract.LONG_RUNNING_JOBS_TABLE_NAME, self.table.table_name)
        self.table.grant(function, *actions)

    def grant_start(self, function: lambda_.Function) -> None:
        """Let ``function`` start jobs (``asyncstack.runtime.long_running.start_job``) and read them."""
        self.grant_jobs(function, "dynamodb:GetItem", "dynamodb:PutItem")
        function.add_environment(contract.LONG_RUNNING_STATE_MACHINE_ARN, self.workflow.arn)
        self.workflow.state_machine.grant_start_execution(function)
