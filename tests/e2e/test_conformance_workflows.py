"""Workflow conformance on the local cloud: Step Functions retry/catch with real Lambda code, EventBridge
rules, EventBridge Scheduler (firing, deletion after completion, retries and dead letters, Lambda and
Step Functions targets), API Gateway proxy events and SNS -> Lambda, each as AWS behaves.

The stack is ``tests/e2e/workflows_app/app.py``, deployed next to AsyncStack with the CDK CLI.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from demo.scenarios import count_events, finished_execution, history
from localcloud.cloud import LocalCloud
from localcloud.server import ACCOUNT, REGION

pytestmark = pytest.mark.e2e

WORKFLOWS_APP = Path(__file__).resolve().parent / "workflows_app" / "app.py"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def workflows(cloud: LocalCloud) -> dict[str, str]:
    """WorkflowsConformanceStack deployed with ``cdk deploy``; its outputs."""
    report = cloud.deploy(["WorkflowsConformanceStack"], app=f"{sys.executable} {WORKFLOWS_APP}")
    return report.outputs


@pytest.fixture(scope="module")
def state_machine(workflows: dict[str, str]) -> str:
    """The deployed workflow's ARN, as the Step Functions API knows it."""
    return workflows["StateMachineArn"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- helpers ---------------------------------------------------------------------------------------


def _item(cloud: LocalCloud, table: str, pk: str) -> dict[str, Any] | None:
    item = cloud.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)
    return item.get("Item")


def _number(item: dict[str, Any] | None, name: str) -> int:
    return int(item[name]["N"]) if item and name in item else 0


class Inbox:
    """Messages of one queue that carry a marker, received (and deleted) as they arrive; others kept apart."""

    def __init__(self, cloud: LocalCloud, queue_url: str, marker: str) -> None:
        self.cloud = cloud
        self.queue_url = queue_url
        self.marker = marker
        self.messages: list[dict[str, Any]] = []
        self.others: list[str] = []

    def poll(self) -> list[dict[str, Any]]:
        sqs = self.cloud.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if self.marker in message["Body"]:
                self.messages.append(message)
            else:
                self.others.append(message["Body"])
        return self.messages

    def wait_for(self, count: int, what: str) -> list[dict[str, Any]]:
        self.cloud.wait_until(lambda: len(self.poll()) >= count, TIMEOUT, what)
        return self.messages

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(message["Body"]) for message in self.messages]


def _at(moment: datetime) -> str:
    return f"at({moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _firings_of(cloud: LocalCloud, name: str) -> list[Any]:
    """One deterministic scheduler pass as of the clock; the firings of schedule ``name``."""
    return [firing for firing in cloud.scheduler.fire_due() if firing.name == name]


@pytest.fixture
def schedules(cloud: LocalCloud, workflows: dict[str, str]) -> Iterator[Callable[..., str]]:
    """Creates schedules in the stack's group (role from the stack); deletes what is left afterwards."""
    client = cloud.client("scheduler")
    group = workflows["ScheduleGroupName"]
    created: list[str] = []

    def create(expression: str, target: dict[str, Any], **extra: Any) -> str:
        name = _unique("schedule")
        client.create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression=expression,
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"RoleArn": workflows["SchedulerRoleArn"], **target},
            **extra,
        )
        created.append(name)
        return name

    yield create
    for name in created:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_schedule(Name=name, GroupName=group)


def _failed_attempts_reach(cloud: LocalCloud, count: int) -> Callable[[], bool]:
    return lambda: cloud.scheduler.stats.failed_attempts >= count


def _schedule_exists(cloud: LocalCloud, group: str, name: str) -> bool:
    try:
        cloud.client("scheduler").get_schedule(Name=name, GroupName=group)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True


# -- 1. Step Functions retry and catch with real Lambda code ---------------------------------------


def _run_workflow(cloud: LocalCloud, state_machine: str, payload: dict[str, Any]) -> dict[str, Any]:
    started = cloud.client("stepfunctions").start_execution(
        stateMachineArn=state_machine, name=_unique("run"), input=json.dumps(payload)
    )
    return finished_execution(cloud, started["executionArn"])


def test_step_functions_retries_a_custom_lambda_error_until_the_task_succeeds(
    cloud: LocalCloud, workflows: dict[str, str], state_machine: str
) -> None:
    """A Task's Retry on a Lambda function's errorType re-invokes the function until it succeeds."""
    # Given a task retrying TransientError (interval 1 s, backoff 1, 3 retries) and an input that fails twice
    order = _unique("flaky")
    # When the execution runs
    execution = _run_workflow(cloud, state_machine, {"action": "flaky", "id": order, "failures": 2})
    # Then it succeeds with the third attempt's result, and the history shows two failed task attempts
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"id": order, "attempts": 3}
    assert _number(_item(cloud, workflows["ProbeTableName"], order), "attempts") == 3
    events = history(cloud, execution["executionArn"])
    assert count_events(events, "TaskFailed") == 2
    assert count_events(events, "TaskScheduled") == 3
    assert count_events(events, "TaskSucceeded") == 1
    failures = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert {failure["error"] for failure in failures} == {"TransientError"}
    assert all(json.loads(failure["cause"])["errorType"] == "TransientError" for failure in failures)


def test_step_functions_fails_the_execution_when_retries_are_exhausted(
    cloud: LocalCloud, workflows: dict[str, str], state_machine: str
) -> None:
    """After MaxAttempts retries the task's error, not caught, fails the execution with that error."""
    # Given an input that fails more often than the Retry allows (1 attempt + 3 retries)
    order = _unique("exhausted")
    # When the execution runs
    execution = _run_workflow(cloud, state_machine, {"action": "flaky", "id": order, "failures": 10})
    # Then the function ran four times and the execution failed with the function's error
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "TransientError"
    assert _number(_item(cloud, workflows["ProbeTableName"], order), "attempts") == 4
    events = history(cloud, execution["executionArn"])
    assert count_events(events, "TaskFailed") == 4
    assert count_events(events, "ExecutionFailed") == 1
    assert _item(cloud, workflows["ProbeTableName"], f"{order}#compensated") is None


def test_a_parent_workflow_runs_a_child_to_its_end_and_gets_its_output_as_json(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """startExecution.sync:2 waits for the child and returns its DescribeExecution (PascalCase, Output as JSON)."""
    # Given a parent whose task starts the workflow with RUN_JOB, associated with the parent
    order = _unique("nested")
    # When the parent runs with an input the child succeeds with on its second attempt
    execution = _run_workflow(
        cloud, workflows["ParentStateMachineArn"], {"action": "flaky", "id": order, "failures": 1}
    )
    # Then the parent succeeds with the child's description: its output as JSON, dates in epoch ms
    assert execution["status"] == "SUCCEEDED", execution
    child = json.loads(execution["output"])
    assert child["Status"] == "SUCCEEDED"
    assert child["StateMachineArn"] == workflows["StateMachineArn"]
    assert child["Output"] == {"id": order, "attempts": 2}
    assert isinstance(child["StartDate"], int) and child["StartDate"] <= child["StopDate"]
    # and the child got the parent's input, with the parent's execution id associated
    assert child["Input"] == {
        "action": "flaky", "id": order, "failures": 1,
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": execution["executionArn"],
    }  # fmt: skip
    described = cloud.client("stepfunctions").describe_execution(executionArn=child["ExecutionArn"])
    assert described["status"] == "SUCCEEDED"


def test_a_parent_workflow_fails_with_states_task_failed_when_its_child_fails(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """A failed child fails a startExecution.sync:2 task with States.TaskFailed, the child's description as cause."""
    # Given a child that fails for good (more failures than its retries)
    order = _unique("nested-fail")
    # When the parent runs it
    execution = _run_workflow(
        cloud, workflows["ParentStateMachineArn"], {"action": "flaky", "id": order, "failures": 10}
    )
    # Then the parent fails with States.TaskFailed, and the cause describes the failed child
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "States.TaskFailed"
    cause = json.loads(execution["cause"])
    assert cause["Status"] == "FAILED" and cause["Error"] == "TransientError"


def test_a_parent_workflow_that_does_not_wait_gets_the_child_execution_arn(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """startExecution (request-response) returns ExecutionArn and StartDate at once; the child runs on."""
    # Given a parent whose task starts the workflow without waiting
    order = _unique("started")
    # When it runs
    execution = _run_workflow(
        cloud, workflows["StarterStateMachineArn"], {"action": "flaky", "id": order, "failures": 0}
    )
    # Then it succeeds with the started execution's ARN and start date (epoch ms) only
    assert execution["status"] == "SUCCEEDED", execution
    started = json.loads(execution["output"])
    assert set(started) == {"ExecutionArn", "StartDate"} and isinstance(started["StartDate"], int)
    # and the child runs to its own end
    child = finished_execution(cloud, started["ExecutionArn"])
    assert child["status"] == "SUCCEEDED" and json.loads(child["output"]) == {"id": order, "attempts": 1}


def test_step_functions_catches_a_business_error_compensates_and_fails(
    cloud: LocalCloud, workflows: dict[str, str], state_machine: str
) -> None:
    """A Catch on an error the Retry does not cover runs the compensation at once and ends in the Fail state."""
    # Given an input the function always rejects with BusinessError
    order = _unique("reject")
    # When the execution runs
    execution = _run_workflow(cloud, state_machine, {"action": "reject", "id": order})
    # Then no retry happened, the compensation recorded the caught error, and the Fail state's error ends it
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "OrderRejected"
    assert execution["cause"] == "a business rule rejected the order; compensated"
    table = workflows["ProbeTableName"]
    assert _number(_item(cloud, table, order), "attempts") == 1
    compensation = _item(cloud, table, f"{order}#compensated")
    assert compensation is not None
    assert json.loads(compensation["event"]["S"]) == {
        "action": "compensate",
        "id": order,
        "error": "BusinessError",
    }
    events = history(cloud, execution["executionArn"])
    assert count_events(events, "TaskFailed") == 1
    assert count_events(events, "TaskSucceeded") == 1  # the compensation
    assert count_events(events, "FailStateEntered") == 1
    failed = [e["executionFailedEventDetails"] for e in events if e["type"] == "ExecutionFailed"]
    assert failed == [{"error": "OrderRejected", "cause": "a business rule rejected the order; compensated"}]


def test_the_deployed_state_machine_is_visible_to_the_step_functions_api(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """A state machine CloudFormation created can be described and started through the Step Functions API."""
    # Given the state machine deployed by cdk deploy
    sfn = cloud.client("stepfunctions")
    # When it is described and started by its ARN
    described = sfn.describe_state_machine(stateMachineArn=workflows["StateMachineArn"])
    started = sfn.start_execution(
        stateMachineArn=workflows["StateMachineArn"],
        input=json.dumps({"action": "flaky", "id": _unique("deployed"), "failures": 0}),
    )
    # Then the API knows it and the execution succeeds
    assert described["status"] == "ACTIVE"
    assert finished_execution(cloud, started["executionArn"])["status"] == "SUCCEEDED"


def test_an_unnamed_execution_gets_a_unique_name(
    cloud: LocalCloud, workflows: dict[str, str], state_machine: str
) -> None:
    """StartExecution without a name: Step Functions names each execution with a UUID."""
    sfn = cloud.client("stepfunctions")
    payload = json.dumps({"action": "flaky", "id": _unique("unnamed"), "failures": 0})
    # Given two executions started without a name / Then both start, under different UUID names
    first = sfn.start_execution(stateMachineArn=state_machine, input=payload)["executionArn"]
    second = sfn.start_execution(stateMachineArn=state_machine, input=payload)["executionArn"]
    names = [arn.rsplit(":", 1)[-1] for arn in (first, second)]
    assert names[0] != names[1] and all(uuid.UUID(name) for name in names)
    assert {finished_execution(cloud, arn)["status"] for arn in (first, second)} == {"SUCCEEDED"}


def test_a_state_machine_has_the_type_logging_and_tracing_its_template_declares(cloud: LocalCloud) -> None:
    """AWS::StepFunctions::StateMachine: StateMachineType, LoggingConfiguration and TracingConfiguration."""
    # Given the order workflow, declared with ALL-level logging to a vendedlogs group and X-Ray tracing
    described = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=cloud.stack_outputs()["OrderWorkflowArn"]
    )
    # Then the deployed state machine has them
    assert described["type"] == "STANDARD"
    assert described["tracingConfiguration"] == {"enabled": True}
    logging = described["loggingConfiguration"]
    assert logging["level"] == "ALL" and logging["includeExecutionData"] is False
    (destination,) = logging["destinations"]
    assert ":log-group:/aws/vendedlogs/states/" in destination["cloudWatchLogsLogGroup"]["logGroupArn"]


def test_local_cloud_status_counts_executions_started_through_the_api(
    cloud: LocalCloud, state_machine: str
) -> None:
    """The local cloud's execution counts (status, executions()) include the executions the API started."""
    # Given a state machine the Step Functions API knows
    name = state_machine.rsplit(":", 1)[-1]
    before = cloud.executions().get(name, {}).get("SUCCEEDED", 0)
    # When one execution runs to success
    execution = _run_workflow(
        cloud, state_machine, {"action": "flaky", "id": _unique("count"), "failures": 0}
    )
    assert execution["status"] == "SUCCEEDED"
    # Then executions() counts it
    assert cloud.executions().get(name, {}).get("SUCCEEDED", 0) == before + 1


# -- 2. EventBridge rule to an SQS target ----------------------------------------------------------


def test_eventbridge_rule_delivers_matching_events_to_its_queue_target(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """A rule on the default bus sends matching events, and only those, to its SQS target as the event JSON."""
    # Given a rule matching the stack's source, with a queue target and no input transformation
    order, other = _unique("matching"), _unique("ignored")
    inbox = Inbox(cloud, workflows["EventsQueueUrl"], order)
    events = cloud.client("events")
    # When an event from another source is put, then one from the rule's source
    for source, order_id in (("someone.else", other), (workflows["EventSource"], order)):
        response = events.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": "OrderPlaced",
                    "Detail": json.dumps({"orderId": order_id}),
                    "Resources": ["arn:aws:example:::order/1"],
                }
            ]
        )
        assert response["FailedEntryCount"] == 0
    # Then the matching event arrives, as EventBridge's event envelope, and the other one does not (moto
    # delivers during PutEvents, so the first event would have arrived before the second)
    inbox.wait_for(1, "the matching event in the rule's queue")
    [event] = inbox.bodies
    assert event["source"] == workflows["EventSource"]
    assert event["detail-type"] == "OrderPlaced"
    assert event["detail"] == {"orderId": order}
    assert event["resources"] == ["arn:aws:example:::order/1"]
    assert event["region"] == REGION
    assert event["version"] == "0"
    assert event["id"] == response["Entries"][0]["EventId"]
    assert datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    inbox.poll()
    assert not any(other in body for body in inbox.others)


def test_eventbridge_target_event_names_the_account(cloud: LocalCloud, workflows: dict[str, str]) -> None:
    """The event a rule delivers carries the account field of EventBridge's envelope."""
    # Given the rule with a queue target
    order = _unique("account")
    inbox = Inbox(cloud, workflows["EventsQueueUrl"], order)
    # When a matching event is put
    cloud.client("events").put_events(
        Entries=[
            {
                "Source": workflows["EventSource"],
                "DetailType": "OrderPlaced",
                "Detail": json.dumps({"orderId": order}),
            }
        ]
    )
    # Then the delivered event names the account
    [event] = [json.loads(m["Body"]) for m in inbox.wait_for(1, "the matching event")]
    assert event.get("account") == ACCOUNT


def test_eventbridge_input_transformer_renders_the_template(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """An InputTransformer target receives its template with the event's values, strings quoted as JSON."""
    # Given a rule whose queue target has an input transformer built by RuleTargetInput.from_object
    order = _unique("transformed")
    inbox = Inbox(cloud, workflows["TransformedEventsQueueUrl"], order)
    # When a matching event is put
    cloud.client("events").put_events(
        Entries=[
            {
                "Source": workflows["TransformedEventSource"],
                "DetailType": "OrderPlaced",
                "Detail": json.dumps({"orderId": order}),
            }
        ]
    )
    # Then the queue receives the rendered template
    inbox.wait_for(1, "the transformed event")
    assert inbox.bodies == [
        {"orderId": order, "kind": "OrderPlaced", "source": workflows["TransformedEventSource"]}
    ]


# -- 3. Scheduler: one-time schedules, deletion after completion, rate schedules ------------------


def test_scheduler_fires_a_one_time_schedule_once_and_deletes_it(
    cloud: LocalCloud, workflows: dict[str, str], schedules: Callable[..., str]
) -> None:
    """An at() schedule fires once at its time with its Input, then ActionAfterCompletion DELETE removes it."""
    # Given a one-time schedule due two minutes ahead on the clock, targeting a queue
    marker = _unique("once")
    due = (cloud.clock.now() + timedelta(minutes=2)).replace(microsecond=0)
    name = schedules(
        _at(due),
        {
            "Arn": workflows["ScheduleQueueArn"],
            "Input": json.dumps({"marker": marker, "scheduledTime": "<aws.scheduler.scheduled-time>"}),
        },
        ActionAfterCompletion="DELETE",
    )
    inbox = Inbox(cloud, workflows["ScheduleQueueUrl"], marker)
    # When the scheduler looks before the due time, nothing fires
    assert _firings_of(cloud, name) == []
    assert inbox.poll() == []
    assert _schedule_exists(cloud, workflows["ScheduleGroupName"], name)
    # When the clock passes the due time
    cloud.clock.advance(180)
    # Then the message arrives with the rendered input, and the schedule is deleted
    inbox.wait_for(1, "the one-time schedule's message")
    assert inbox.bodies == [{"marker": marker, "scheduledTime": _stamp(due)}]
    group = workflows["ScheduleGroupName"]
    cloud.wait_until(lambda: not _schedule_exists(cloud, group, name), TIMEOUT, "the schedule's deletion")
    with pytest.raises(ClientError) as raised:
        cloud.client("scheduler").get_schedule(Name=name, GroupName=group)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # And it never fires again
    cloud.clock.advance(120)
    assert _firings_of(cloud, name) == []
    assert len(inbox.poll()) == 1


def test_scheduler_fires_a_rate_schedule_once_per_period(
    cloud: LocalCloud, workflows: dict[str, str], schedules: Callable[..., str]
) -> None:
    """A rate(1 minute) schedule fires once per elapsed minute, on minute boundaries counted from creation."""
    # Given a rate(1 minute) schedule created well inside a minute (so real time crosses no boundary)
    if cloud.clock.now().second > 45:
        cloud.clock.advance(61 - cloud.clock.now().second)
    marker = _unique("rate")
    name = schedules(
        "rate(1 minute)",
        {
            "Arn": workflows["ScheduleQueueArn"],
            "Input": json.dumps({"marker": marker, "time": "<aws.scheduler.scheduled-time>"}),
        },
    )
    inbox = Inbox(cloud, workflows["ScheduleQueueUrl"], marker)
    assert _firings_of(cloud, name) == []
    assert inbox.poll() == []
    for minute in (1, 2, 3):
        # When the clock advances one minute (and a scheduler pass has seen it: every due firing is sent)
        cloud.clock.advance(60)
        cloud.scheduler.fire_due()
        # Then exactly one more message arrives
        inbox.wait_for(minute, f"firing {minute} of the rate schedule")
        assert len(inbox.messages) == minute
    times = [datetime.fromisoformat(body["time"].replace("Z", "+00:00")) for body in inbox.bodies]
    assert all(moment.second == 0 for moment in times)
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [timedelta(minutes=1)] * 2


# -- 4. Scheduler retries and dead-letter queue ----------------------------------------------------


def test_scheduler_retries_a_failing_target_then_dead_letters_the_event(
    cloud: LocalCloud, workflows: dict[str, str], schedules: Callable[..., str]
) -> None:
    """After MaximumRetryAttempts failed retries Scheduler sends the payload to the DLQ with error attributes."""
    # Given a one-time schedule targeting a queue that does not exist, 2 retries and the stack's DLQ
    marker = _unique("dlq")
    missing_queue = workflows["ScheduleQueueArn"].rsplit(":", 1)[0] + f":{_unique('missing')}"
    due = (cloud.clock.now() + timedelta(minutes=1)).replace(microsecond=0)
    name = schedules(
        _at(due),
        {
            "Arn": missing_queue,
            "Input": json.dumps({"marker": marker}),
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": workflows["ScheduleDeadLetterQueueArn"]},
        },
    )
    dead_letters = Inbox(cloud, workflows["ScheduleDeadLetterQueueUrl"], marker)
    before = cloud.scheduler.stats.failed_attempts
    # When the clock passes the due time, and then the retry backoff (1 s, then 2 s on the clock)
    cloud.clock.advance(90)
    for failed in (1, 2):
        cloud.wait_until(_failed_attempts_reach(cloud, before + failed), TIMEOUT, f"failed attempt {failed}")
        assert dead_letters.poll() == []
        cloud.clock.advance(5)
    # Then after three attempts the event is in the dead-letter queue, with Scheduler's attributes
    dead_letters.wait_for(1, "the dead-lettered event")
    [message] = dead_letters.messages
    assert json.loads(message["Body"]) == {"marker": marker}
    attributes = {key: value["StringValue"] for key, value in message["MessageAttributes"].items()}
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["TARGET_ARN"] == missing_queue
    assert attributes["SCHEDULE_ARN"].endswith(f":schedule/{workflows['ScheduleGroupName']}/{name}")
    assert attributes["SCHEDULED_TIME"] == _stamp(due)
    assert attributes["ERROR_CODE"]
    assert attributes["ERROR_MESSAGE"]
    assert cloud.scheduler.stats.failed_attempts - before == 3


# -- 5. Scheduler to Lambda and Step Functions -----------------------------------------------------


def test_scheduler_invokes_a_lambda_target_asynchronously(
    cloud: LocalCloud, workflows: dict[str, str], schedules: Callable[..., str]
) -> None:
    """A schedule with a Lambda target invokes the function (asynchronously) with the schedule's Input."""
    # Given a one-time schedule targeting the probe function
    record = _unique("lambda-target")
    due = (cloud.clock.now() + timedelta(minutes=1)).replace(microsecond=0)
    schedules(
        _at(due),
        {
            "Arn": workflows["ProbeFunctionArn"],
            "Input": json.dumps({"action": "record", "id": record, "at": "<aws.scheduler.scheduled-time>"}),
        },
        ActionAfterCompletion="DELETE",
    )
    accepted = cloud.async_invoker.stats.accepted
    # When the clock passes the due time
    cloud.clock.advance(90)
    # Then the function ran once with the rendered input, through the asynchronous invocation queue
    table = workflows["ProbeTableName"]
    cloud.wait_until(lambda: _item(cloud, table, record) is not None, TIMEOUT, "the probe's record")
    item = _item(cloud, table, record)
    assert _number(item, "invocations") == 1
    assert item is not None
    assert json.loads(item["event"]["S"]) == {"action": "record", "id": record, "at": _stamp(due)}
    assert cloud.async_invoker.stats.accepted > accepted


def test_scheduler_starts_a_step_functions_execution(
    cloud: LocalCloud, workflows: dict[str, str], schedules: Callable[..., str], state_machine: str
) -> None:
    """A schedule with a state machine target starts an execution with the schedule's Input."""
    # Given a one-time schedule targeting the state machine
    order = _unique("sfn-target")
    due = (cloud.clock.now() + timedelta(minutes=1)).replace(microsecond=0)
    schedules(
        _at(due),
        {
            "Arn": state_machine,
            "Input": json.dumps({"action": "flaky", "id": order, "failures": 0}),
        },
        ActionAfterCompletion="DELETE",
    )
    sfn = cloud.client("stepfunctions")

    def started() -> list[dict[str, Any]]:
        executions = sfn.list_executions(stateMachineArn=state_machine)["executions"]
        return [
            e
            for e in executions
            if order in sfn.describe_execution(executionArn=e["executionArn"]).get("input", "")
        ]

    assert started() == []
    # When the clock passes the due time
    cloud.clock.advance(90)
    # Then one execution with that input runs to success
    cloud.wait_until(lambda: bool(started()), TIMEOUT, "the scheduled execution")
    [execution] = started()
    finished = finished_execution(cloud, execution["executionArn"])
    assert finished["status"] == "SUCCEEDED", finished
    assert json.loads(finished["output"]) == {"id": order, "attempts": 1}


# -- 6. API Gateway REST API proxy events ----------------------------------------------------------


@pytest.fixture
def api(cloud: LocalCloud, workflows: dict[str, str]) -> str:
    """The stack's REST API on the local API, at its own path as AWS gives each REST API its own
    invoke URL (the root serves AsyncStack's job API)."""
    assert cloud.api is not None
    return f"{cloud.api.url}/restapis/{workflows['ApiId']}/{workflows['ApiStage']}/_user_request_"


def _http(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_api_gateway_proxy_event_has_the_rest_api_shape(
    cloud: LocalCloud, workflows: dict[str, str], api: str
) -> None:
    """A {proxy+} Lambda proxy integration receives the REST API (payload 1.0) event of the request."""
    # Given a REST API with /items/{proxy+} (ANY) integrated with the probe, which echoes its event
    # When GET /items/42?x=1&x=2 is requested
    status, headers, body = _http(f"{api}/items/42?x=1&x=2", headers={"X-Probe": "yes"})
    # Then the function's response is returned and its event has API Gateway's fields
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    event = json.loads(body)
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/items/42"
    assert event["resource"] == "/items/{proxy+}"
    assert event["pathParameters"] == {"proxy": "42"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["headers"]["X-Probe"] == "yes"
    assert event["multiValueHeaders"]["X-Probe"] == ["yes"]
    assert event["requestContext"]["stage"] == workflows["ApiStage"]
    assert event["requestContext"]["resourcePath"] == "/items/{proxy+}"
    assert event["requestContext"]["apiId"] == workflows["ApiId"]
    assert event["requestContext"]["requestId"] == headers["x-amzn-RequestId"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_api_gateway_passes_the_request_body_through(
    cloud: LocalCloud, workflows: dict[str, str], api: str
) -> None:
    """A proxy integration passes a text request body through unchanged, not base64-encoded."""
    # Given the /items/{proxy+} ANY method
    payload = json.dumps({"sku": "A-1", "quantity": 3})
    # When a JSON body is POSTed to a nested path
    status, _, body = _http(
        f"{api}/items/a/b", method="POST", body=payload.encode(), headers={"Content-Type": "application/json"}
    )
    # Then the event carries the body as sent
    assert status == 200, body
    event = json.loads(body)
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert event["body"] == payload
    assert event["isBase64Encoded"] is False


def test_api_gateway_api_key_required_method(cloud: LocalCloud, workflows: dict[str, str], api: str) -> None:
    """A method with apiKeyRequired answers 403 Forbidden without a valid x-api-key and runs with one."""
    # Given GET /secure with api_key_required=True
    # When it is called without a key, with a wrong key, and with the key
    without = _http(f"{api}/secure")
    wrong = _http(f"{api}/secure", headers={"x-api-key": "not-a-key"})
    with_key = _http(f"{api}/secure", headers={"x-api-key": cloud.api_key})
    # Then only the call with the key reaches the function
    for status, _, body in (without, wrong):
        assert status == 403
        assert json.loads(body) == {"message": "Forbidden"}
    status, _, body = with_key
    assert status == 200, body
    event = json.loads(body)
    assert event["resource"] == "/secure"
    assert event["requestContext"]["identity"]["apiKey"] == cloud.api_key


def test_api_gateway_unknown_route_answers_missing_authentication_token(
    cloud: LocalCloud, workflows: dict[str, str], api: str
) -> None:
    """A path or method no resource defines answers 403 {"message": "Missing Authentication Token"}."""
    # Given resources /items/{proxy+} (ANY) and /secure (GET only), and nothing at / or /items itself
    invocations = cloud.runtime.function(workflows["ProbeFunctionName"]).stats.invocations
    # When paths and methods outside them are requested
    for method, path in (("GET", "/nowhere"), ("GET", "/"), ("GET", "/items"), ("POST", "/secure")):
        status, headers, body = _http(f"{api}{path}", method=method)
        # Then API Gateway answers itself, without invoking the function
        assert status == 403, (method, path, body)
        assert json.loads(body) == {"message": "Missing Authentication Token"}
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert cloud.runtime.function(workflows["ProbeFunctionName"]).stats.invocations == invocations


def test_the_rest_api_resources_are_all_supported(cloud: LocalCloud, workflows: dict[str, str]) -> None:
    """Every resource CDK's RestApi synthesizes is one the local cloud creates (none silently skipped)."""
    # Given the deployed stack / When its resources are checked / Then none has a type moto cannot create
    mine = [r for r in cloud.unsupported_resources() if r["stack"] == "WorkflowsConformanceStack"]
    assert mine == []


# -- 7. SNS -> Lambda ------------------------------------------------------------------------------


def _published_to_probe(
    cloud: LocalCloud, workflows: dict[str, str], **publish: Any
) -> tuple[str, str, dict[str, Any]]:
    """Publishes a message naming a new record id; (MessageId, message, the event the probe recorded)."""
    record = _unique("sns")
    message = json.dumps({"id": record})
    response = cloud.client("sns").publish(TopicArn=workflows["TopicArn"], Message=message, **publish)
    table = workflows["ProbeTableName"]
    cloud.wait_until(lambda: _item(cloud, table, record) is not None, TIMEOUT, "the SNS event at the probe")
    item = _item(cloud, table, record)
    assert item is not None
    assert _number(item, "invocations") == 1
    return response["MessageId"], message, json.loads(item["event"]["S"])


def test_sns_invokes_a_subscribed_lambda_with_the_message(
    cloud: LocalCloud, workflows: dict[str, str]
) -> None:
    """A Lambda subscription is invoked asynchronously with an SNS event carrying the published message."""
    # Given the probe subscribed to the topic
    accepted = cloud.async_invoker.stats.accepted
    # When a message is published with a subject
    _, message, event = _published_to_probe(cloud, workflows, Subject="conformance")
    # Then the probe received one aws:sns record with that message and subject
    [record] = event["Records"]
    assert record["EventSource"] == "aws:sns"
    assert record["EventVersion"] == "1.0"
    assert record["Sns"]["Type"] == "Notification"
    assert record["Sns"]["Message"] == message
    assert record["Sns"]["Subject"] == "conformance"
    assert cloud.async_invoker.stats.accepted > accepted


def test_sns_event_envelope_describes_the_publication(cloud: LocalCloud, workflows: dict[str, str]) -> None:
    """The SNS event names the topic, subscription, MessageId, attributes and (absent) subject of the publish."""
    # Given the probe subscribed to the topic
    # When a message is published with an attribute and no subject
    message_id, _, event = _published_to_probe(
        cloud, workflows, MessageAttributes={"kind": {"DataType": "String", "StringValue": "probe"}}
    )
    # Then the envelope describes that publication, as SNS builds it
    sns = event["Records"][0]["Sns"]
    assert sns["TopicArn"] == workflows["TopicArn"]
    assert event["Records"][0]["EventSubscriptionArn"].startswith(workflows["TopicArn"] + ":")
    assert sns["MessageId"] == message_id
    assert sns["MessageAttributes"] == {"kind": {"Type": "String", "Value": "probe"}}
    assert sns["Subject"] is None
    assert not sns["Timestamp"].startswith("1970")
