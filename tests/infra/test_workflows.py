"""The Workflow construct and the three workflows built on it (order saga, long-running jobs,
request-reply), asserted by property on a small stack: logging, tracing, alarms, retry policies,
the compensation graph, the job loop, and what the workers may do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template

from asyncstack import contract
from asyncstack.cdk.long_running_jobs import LongRunningJobs
from asyncstack.cdk.request_reply import RequestReply
from asyncstack.cdk.workflow import Workflow
from infra.order_saga import OrderSaga

pytestmark = pytest.mark.infra


def _function(stack: Stack, construct_id: str, timeout: int = 30) -> lambda_.Function:
    return lambda_.Function(
        stack,
        construct_id,
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_13,
        timeout=Duration.seconds(timeout),
    )


@pytest.fixture(scope="module")
def template() -> Template:
    stack = Stack(App(), "Workflows")
    OrderSaga(
        stack,
        "Saga",
        payments=_function(stack, "Payments"),
        inventory=_function(stack, "Inventory"),
        notifications=_function(stack, "Notifications"),
    )
    exports = LongRunningJobs(
        stack,
        "Exports",
        worker=_function(stack, "ExportWorker", timeout=300),
        access_logs=s3.Bucket(stack, "Logs"),
        results_prefix="exports/",
    )
    exports.grant_start(_function(stack, "ExportStarter"))
    RequestReply(stack, "Resize", worker=_function(stack, "Resizer"), action="image.resize")
    return Template.from_stack(stack)


def _machines(template: Template) -> dict[str, dict[str, Any]]:
    return template.find_resources("AWS::StepFunctions::StateMachine")


def _definition(template: Template, prefix: str) -> dict[str, Any]:
    """The state machine's ASL, with CloudFormation references replaced by placeholders."""
    (machine,) = [m for logical_id, m in _machines(template).items() if logical_id.startswith(prefix)]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "REF" for part in parts)
    definition: dict[str, Any] = json.loads(text)
    return definition


def test_every_workflow_logs_to_a_vendedlogs_group_and_is_traced(template: Template) -> None:
    # Given the three workflows
    machines = _machines(template)
    assert len(machines) == 3
    log_groups = template.find_resources("AWS::Logs::LogGroup")
    for logical_id, machine in machines.items():
        props = machine["Properties"]
        # Then X-Ray tracing is on
        assert props["TracingConfiguration"] == {"Enabled": True}, logical_id
        # And every event is logged (without execution data) to a log group under /aws/vendedlogs/states/
        logging = props["LoggingConfiguration"]
        assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
        (group_id, _arn) = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"]
        assert log_groups[group_id]["Properties"]["LogGroupName"].startswith("/aws/vendedlogs/states/")
        # And the choice of type is explained on the state machine itself
        assert props["StateMachineType"] == "STANDARD" and "Standard" in json.dumps(props["DefinitionString"])


@pytest.mark.parametrize("metric", ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"])
def test_each_workflow_alarms_on_the_first_bad_execution(template: Template, metric: str) -> None:
    # Then each state machine has an alarm at one failed / timed-out / aborted execution a minute
    alarms = [
        alarm
        for alarm in template.find_resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == metric
    ]
    assert len(alarms) == 3
    for alarm in alarms:
        props = alarm["Properties"]
        assert (props["Namespace"], props["Threshold"], props["Period"]) == ("AWS/States", 1, 60)
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_express_workflows_are_refused_beyond_five_minutes() -> None:
    stack = Stack(App(), "Express")
    with pytest.raises(ValueError, match="Express workflows run at most 5 minutes"):
        Workflow(
            stack,
            "TooLong",
            definition=sfn.Pass(stack, "Nothing"),
            kind=sfn.StateMachineType.EXPRESS,
            reason="test",
            timeout=Duration.minutes(10),
        )


def test_an_express_workflow_is_synthesized_as_express() -> None:
    stack = Stack(App(), "Express")
    Workflow(
        stack,
        "Short",
        definition=sfn.Pass(stack, "Nothing"),
        kind=sfn.StateMachineType.EXPRESS,
        reason="Express: short and idempotent",
        timeout=Duration.minutes(1),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::StepFunctions::StateMachine", {"StateMachineType": "EXPRESS"}
    )


# -- the order saga ------------------------------------------------------------------------------

STEPS = ("ChargePayment", "ReserveInventory", "SendConfirmation")
COMPENSATIONS = ("ReleaseInventory", "RefundPayment")


@pytest.fixture(scope="module")
def saga(template: Template) -> dict[str, Any]:
    return _definition(template, "SagaWorkflow")


def test_the_saga_runs_its_steps_in_order(saga: dict[str, Any]) -> None:
    states = saga["States"]
    assert saga["StartAt"] == "AcceptOrder"
    assert [states[name]["Next"] for name in ("AcceptOrder", *STEPS)] == [*STEPS, "OrderConfirmed"]
    assert states["OrderConfirmed"]["Type"] == "Succeed"


@pytest.mark.parametrize("name", STEPS + COMPENSATIONS + ("NotifyFailure",))
def test_each_step_has_a_timeout_and_retries_transient_errors_with_capped_jittered_backoff(
    saga: dict[str, Any], name: str
) -> None:
    state = saga["States"][name]
    assert state["TimeoutSeconds"] == 30
    lambda_retry, retry = state["Retry"]
    assert {"TransientError", "PaymentProviderUnavailableError", "States.Timeout"} <= set(
        retry["ErrorEquals"]
    )
    assert "States.ALL" not in retry["ErrorEquals"], "business errors must not be retried"
    # And Lambda's own failures (a throttled function) have attempts of their own, first
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= set(lambda_retry["ErrorEquals"])
    assert not set(lambda_retry["ErrorEquals"]) & set(retry["ErrorEquals"])
    assert lambda_retry["MaxAttempts"] == 6 and lambda_retry["IntervalSeconds"] == 2
    assert lambda_retry["MaxDelaySeconds"] == 30 and lambda_retry["JitterStrategy"] == "FULL"
    assert retry["BackoffRate"] == 2 and retry["IntervalSeconds"] == 1
    assert retry["JitterStrategy"] == "FULL"
    assert retry["MaxDelaySeconds"] == (30 if name in COMPENSATIONS else 8)
    assert retry["MaxAttempts"] == (6 if name in COMPENSATIONS else 3)


def test_a_failure_runs_the_compensations_of_the_steps_already_done_newest_first(
    saga: dict[str, Any],
) -> None:
    states = saga["States"]

    def path_after(step: str, error: str) -> list[str]:
        catch = next(
            c
            for c in states[step]["Catch"]
            if error in c["ErrorEquals"] or c["ErrorEquals"] == ["States.ALL"]
        )
        assert catch["ResultPath"] == "$.failure"
        path, name = [], catch["Next"]
        while "Next" in states[name]:
            path.append(name)
            name = states[name]["Next"]
        return [*path, name]

    # A business answer: the step did not happen, only the earlier steps are compensated
    assert path_after("ChargePayment", "PaymentDeclinedError") == ["NotifyFailure", "OrderFailed"]
    assert path_after("ReserveInventory", "OutOfStockError") == [
        "RefundPayment",
        "NotifyFailure",
        "OrderFailed",
    ]
    assert path_after("SendConfirmation", "RecipientRejectedError") == [
        "ReleaseInventory",
        "RefundPayment",
        "NotifyFailure",
        "OrderFailed",
    ]
    # No answer (timeout, retries exhausted): the step may have happened, so it is compensated too
    assert path_after("ChargePayment", "States.Timeout") == ["RefundPayment", "NotifyFailure", "OrderFailed"]
    assert path_after("ReserveInventory", "States.Timeout") == [
        "ReleaseInventory",
        "RefundPayment",
        "NotifyFailure",
        "OrderFailed",
    ]


def test_the_failed_state_says_why_and_a_stuck_compensation_is_named(saga: dict[str, Any]) -> None:
    states = saga["States"]
    assert states["OrderFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.failure.Error",
        "CausePath": "$.failure.Cause",
    }
    for name in COMPENSATIONS:
        assert states[name]["Catch"][0]["Next"] == "CompensationFailed"
    assert states["CompensationFailed"]["Error"] == "CompensationFailed"


def test_steps_receive_the_order_and_keep_their_results_apart(saga: dict[str, Any]) -> None:
    states = saga["States"]
    assert states["ChargePayment"]["Parameters"]["Payload"] == {"action": "charge", "order.$": "$.order"}
    assert states["ChargePayment"]["ResultPath"] == "$.payment"
    assert states["RefundPayment"]["ResultPath"] is None
    assert states["NotifyFailure"]["Parameters"]["Payload"]["failure.$"] == "$.failure"


# -- long-running jobs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job_loop(template: Template) -> dict[str, Any]:
    return _definition(template, "ExportsWorkflow")


def test_the_job_workflow_invokes_the_worker_until_it_says_done(job_loop: dict[str, Any]) -> None:
    states = job_loop["States"]
    run = states[job_loop["StartAt"]]
    assert run["Parameters"]["Payload"] == {"action": "run", "job_id.$": "$.job_id"}
    choice = states[run["Next"]]
    assert choice["Type"] == "Choice"
    assert choice["Choices"][0]["Variable"] == "$.run.done" and choice["Choices"][0]["BooleanEquals"] is True
    assert choice["Default"] == job_loop["StartAt"]
    # And the worker's own timeout (300 s) bounds each run, with a margin
    assert run["TimeoutSeconds"] == 330


def test_a_crashed_or_timed_out_run_is_retried_and_a_final_failure_marks_the_job(
    job_loop: dict[str, Any],
) -> None:
    states = job_loop["States"]
    run = states[job_loop["StartAt"]]
    (retry,) = run["Retry"]
    assert {"Runtime.ExitError", "Sandbox.Timedout", "States.Timeout"} <= set(retry["ErrorEquals"])
    assert retry["JitterStrategy"] == "FULL" and retry["MaxAttempts"] == 5
    (catch,) = run["Catch"]
    mark = states[catch["Next"]]
    assert mark["Parameters"]["Payload"] == {"action": "fail", "job_id.$": "$.job_id", "error.$": "$.failure"}
    assert states[mark["Next"]]["Type"] == "Fail"


def test_the_export_worker_may_touch_its_jobs_and_its_bucket_prefix_only(template: Template) -> None:
    policies = template.find_resources("AWS::IAM::Policy")
    (statements,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for logical_id, p in policies.items()
        if logical_id.startswith("ExportWorkerServiceRole")
    ]
    actions = sorted(
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    assert "s3:*" not in actions and not any(a.endswith("*") for a in actions), actions
    s3_statement = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert s3_statement["Resource"]["Fn::Join"][1][-1] == "/exports/*"


def _variables(template: Template, logical_prefix: str) -> dict[str, Any]:
    (function,) = [
        f for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
        if logical_id.startswith(logical_prefix)
    ]  # fmt: skip
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_the_worker_and_a_starter_learn_the_jobs_by_the_contract_names(template: Template) -> None:
    # Given the export worker and a function granted to start exports
    worker, starter = _variables(template, "ExportWorker"), _variables(template, "ExportStarter")
    # Then the worker is told its jobs table and results bucket
    assert set(worker) == {contract.LONG_RUNNING_JOBS_TABLE_NAME, contract.LONG_RUNNING_RESULTS_BUCKET}
    # And the starter the same jobs table and the workflow it may start
    assert set(starter) == {contract.LONG_RUNNING_JOBS_TABLE_NAME, contract.LONG_RUNNING_STATE_MACHINE_ARN}
    assert starter[contract.LONG_RUNNING_JOBS_TABLE_NAME] == worker[contract.LONG_RUNNING_JOBS_TABLE_NAME]
    assert "ExportsWorkflowStateMachine" in json.dumps(starter[contract.LONG_RUNNING_STATE_MACHINE_ARN])


def test_a_results_prefix_must_be_a_folder() -> None:
    stack = Stack(App(), "Prefix")
    for prefix in ("exports", "/exports/"):
        with pytest.raises(ValueError, match="results_prefix"):
            LongRunningJobs(
                stack, f"Jobs{len(prefix)}", worker=_function(stack, f"Worker{len(prefix)}"),
                access_logs=s3.Bucket(stack, f"Logs{len(prefix)}"), results_prefix=prefix,
            )  # fmt: skip


# -- request-reply -------------------------------------------------------------------------------


def test_the_task_token_variant_waits_for_the_worker_with_heartbeats(template: Template) -> None:
    definition = _definition(template, "ResizeWorkflow")
    call = definition["States"][definition["StartAt"]]
    assert call["Resource"].endswith(
        ":states:::sqs:sendMessage.waitForTaskToken"
    ) or "waitForTaskToken" in json.dumps(call["Resource"])
    assert call["HeartbeatSeconds"] == 30 and call["TimeoutSeconds"] == 300
    assert call["Parameters"]["MessageBody"] == {
        "action": "image.resize",
        "payload.$": "$",
        "task_token.$": "$$.Task.Token",
    }


def test_the_worker_answers_only_the_declared_reply_queues_and_its_own_workflow(template: Template) -> None:
    # Then the worker knows the reply queues it may answer
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"RPC_REPLY_QUEUE_URLS": Match.any_value()})}},
    )
    # And it may end tasks of its own state machine only
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": [
                                    "states:SendTaskSuccess",
                                    "states:SendTaskFailure",
                                    "states:SendTaskHeartbeat",
                                ],
                                "Resource": {"Ref": Match.string_like_regexp("ResizeWorkflowStateMachine")},
                            }
                        )
                    ]
                )
            }
        },
    )
