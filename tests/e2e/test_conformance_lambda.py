"""Conformance of the local cloud's Lambda runtime with AWS: timeouts, async retries and destinations,
the context object, reserved concurrency, warm environments and logs, and packaging.

Each test reproduces one documented AWS behaviour against ConformanceStack (``conformance/app.py``),
deployed with the CDK CLI; every function runs the probe handler in ``conformance/probe/``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import threading
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.awslambda.runtime import ENVIRONMENT_LIFETIME_SECONDS
from localcloud.cloud import LocalCloud
from localcloud.server import REGION
from tests.e2e.conformance.observe import new_run, of_run, take

pytestmark = pytest.mark.e2e

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def invoke(
    cloud: LocalCloud, function: str, event: dict[str, Any], client: Any = None
) -> tuple[Any, str | None]:
    """A synchronous Invoke: (decoded payload, FunctionError or None)."""
    response = (client or cloud.client("lambda")).invoke(
        FunctionName=function, Payload=json.dumps(event).encode()
    )
    assert response["StatusCode"] == 200
    return json.loads(response["Payload"].read() or b"null"), response.get("FunctionError")


def test_a_function_that_runs_past_its_timeout_is_stopped_and_its_environment_replaced(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """Lambda stops an invocation at the function's timeout ("Task timed out after N seconds") and replaces its environment."""
    # Given a function with a 2 s timeout, warm
    name = conformance["TimeoutProbeName"]
    function = cloud.runtime.function(name)
    warm, error = invoke(cloud, name, {"action": "ok"})
    assert error is None
    cold_starts, timeouts = function.stats.cold_starts, function.stats.timeouts

    # When an invocation sleeps past the timeout
    payload, error = invoke(cloud, name, {"action": "sleep", "seconds": 5})

    # Then the invoke fails with Lambda's timeout error, counted as a timeout
    assert error == "Unhandled"
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
    assert payload["errorType"] == "Sandbox.Timedout"
    assert function.stats.timeouts == timeouts + 1
    assert function.stats.cold_starts == cold_starts  # it ran in the warm environment
    # and the next invocation starts a new environment (a cold start)
    after, error = invoke(cloud, name, {"action": "ok"})
    assert error is None
    assert function.stats.cold_starts == cold_starts + 1
    assert after["environment"] != warm["environment"]


def test_async_invocations_are_retried_twice_then_sent_to_the_on_failure_destination(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """An async invocation that keeps failing is retried twice (1 then 2 min apart), then recorded at OnFailure."""
    # Given a function with MaximumRetryAttempts 2 and SQS on-failure and on-success destinations
    name = conformance["AsyncProbeName"]
    stats, function = cloud.async_invoker.stats, cloud.runtime.function(name)
    before, invocations = dataclasses.replace(stats), function.stats.invocations
    lam = cloud.client("lambda")
    run = new_run("async")
    failing = {"action": "fail", "id": run, "message": f"always fails {run}"}

    # When an event that always fails is invoked asynchronously
    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(failing).encode())
    assert response["StatusCode"] == 202
    # Then the first attempt fails and nothing more happens until a minute has passed
    cloud.wait_until(lambda: stats.retried == before.retried + 1, 30, "the first attempt to fail")
    assert function.stats.invocations == invocations + 1
    # When a minute passes, the second attempt fails; when two more minutes pass, the third
    cloud.clock.advance(60)
    cloud.wait_until(
        lambda: stats.retried == before.retried + 2, 30, "the second attempt (first retry) to fail"
    )
    assert function.stats.invocations == invocations + 2
    cloud.clock.advance(120)
    cloud.wait_until(
        lambda: stats.failed == before.failed + 1, 30, "the third attempt (second retry) to fail"
    )

    # Then the on-failure queue receives one invocation record: retries exhausted after 3 attempts, with the event
    [message] = take(cloud, conformance["AsyncFailureQueueUrl"], of_run(run), 1, what="the failure record")
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].startswith(
        lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    )
    assert record["requestPayload"] == failing
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ProbeFailure"
    assert record["responsePayload"]["errorMessage"] == failing["message"]
    assert function.stats.invocations == invocations + 3

    # When an event that succeeds is invoked asynchronously
    succeeding = {"action": "ok", "id": run}
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(succeeding).encode())

    # Then the on-success queue receives its invocation record, with the function's result
    [message] = take(cloud, conformance["AsyncSuccessQueueUrl"], of_run(run), 1, what="the success record")
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == succeeding
    assert record["responsePayload"]["id"] == run
    assert "functionError" not in record["responseContext"]


def test_the_context_object_and_environment_describe_the_deployed_function(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """Lambda's context object and reserved environment variables match the function's deployed configuration."""
    # Given a function deployed with 256 MB, a 7 s timeout and an environment variable
    name = conformance["ContextProbeName"]
    configuration = cloud.client("lambda").get_function_configuration(FunctionName=name)

    # When it is invoked twice by name
    first, error = invoke(cloud, name, {"action": "context"})
    second, _ = invoke(cloud, name, {"action": "context"})

    # Then the context describes the deployed function
    assert error is None
    assert first["function_name"] == configuration["FunctionName"] == name
    assert first["function_version"] == "$LATEST"
    assert first["memory_limit_in_mb"] == configuration["MemorySize"] == 256
    assert first["invoked_function_arn"] == configuration["FunctionArn"]
    assert 0 < first["remaining_ms"] <= configuration["Timeout"] * 1000
    assert configuration["Timeout"] == 7
    # and each invocation has its own request id
    assert UUID.match(first["aws_request_id"])
    assert first["aws_request_id"] != second["aws_request_id"]
    # and the runtime's reserved variables and the function's own are set
    assert first["env"] == {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": REGION,
        "PROBE_MARK": configuration["Environment"]["Variables"]["PROBE_MARK"],
    }


def test_a_function_reads_the_local_clock_warm_and_cold_after_it_is_advanced(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """A Lambda function's clock is the one its event sources and schedules run on (on AWS there is one clock)."""
    # Given a warm environment
    name = conformance["ContextProbeName"]
    warm, error = invoke(cloud, name, {"action": "clock"})
    assert error is None

    # When the local clock moves a day ahead
    moved_to = cloud.clock.advance(timedelta(days=1))
    again, _ = invoke(cloud, name, {"action": "clock"})

    # Then the same environment reads the new time from time.time(), datetime.now() and date.today()
    assert again["environment"] == warm["environment"]
    now = cloud.clock.timestamp()
    assert moved_to.timestamp() - 1 <= again["time"] <= now + 1
    assert moved_to.timestamp() - 1 <= again["datetime_now"] <= now + 1
    assert again["today"] == moved_to.date().isoformat()
    # and the context's remaining time still counts down from the function's timeout, unmoved
    assert 0 < again["remaining_ms"] <= 7000
    # And a new environment's init code reads the local clock too
    cloud.runtime.function(name).close()  # retires the idle environment: the next invoke is a cold start
    cold, _ = invoke(cloud, name, {"action": "clock"})
    assert cold["environment"] != warm["environment"]
    assert moved_to.timestamp() - 1 <= cold["imported_at"] <= cold["time"] <= cloud.clock.timestamp() + 1


def test_a_sync_invoke_beyond_reserved_concurrency_is_throttled(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """A synchronous Invoke beyond the function's reserved concurrency fails with TooManyRequestsException (429)."""
    # Given a function with ReservedConcurrentExecutions 1 whose invocations take two seconds
    name = conformance["ThrottleProbeName"]
    function = cloud.runtime.function(name)
    throttles = function.stats.throttles
    # (a client that does not retry throttles, as the SDKs do by default, so the 429 is seen)
    lam = boto3.session.Session().client(
        "lambda", endpoint_url=cloud.endpoint, region_name=REGION,
        aws_access_key_id="localcloud", aws_secret_access_key="localcloud",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )  # fmt: skip
    start = threading.Barrier(2)
    outcomes: list[Any] = []

    def call() -> None:
        start.wait()
        try:
            outcomes.append(invoke(cloud, name, {"action": "sleep", "seconds": 2}, client=lam))
        except ClientError as error:
            outcomes.append(error)

    # When two invocations are made at once
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then one runs and the other is throttled with 429 TooManyRequestsException
    errors = [o for o in outcomes if isinstance(o, ClientError)]
    results = [o for o in outcomes if not isinstance(o, ClientError)]
    assert len(errors) == 1 and len(results) == 1, outcomes
    assert errors[0].response["Error"]["Code"] == "TooManyRequestsException"
    assert errors[0].response["ResponseMetadata"]["HTTPStatusCode"] == 429
    payload, error = results[0]
    assert error is None and payload["slept"] == 2
    # and the function's throttles count it
    assert function.stats.throttles == throttles + 1


def test_an_environment_is_retired_before_its_role_credentials_expire(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """Lambda recycles execution environments, and a new one gets the role's current credentials: an
    environment older than its lifetime is not reused."""
    name = conformance["TimeoutProbeName"]
    function = cloud.runtime.function(name)
    assert invoke(cloud, name, {"action": "ok"})[1] is None
    cold_starts = function.stats.cold_starts
    # Given its warm environment is past its lifetime
    for environment in function.idle:
        environment.born -= ENVIRONMENT_LIFETIME_SECONDS
    # When it is invoked again, then a new environment answers
    assert invoke(cloud, name, {"action": "ok"})[1] is None
    assert function.stats.cold_starts == cold_starts + 1


def test_an_environment_is_reused_warm_and_its_output_reaches_the_log_group(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """Lambda reuses a warm execution environment for sequential invocations and sends its output to CloudWatch Logs."""
    # Given a function no invocation has started yet
    name = conformance["WarmProbeName"]
    function = cloud.runtime.function(name)
    assert function.stats.cold_starts == 0 and not function.idle
    line = f"probe says {new_run('log')}"

    # When it is invoked twice, one after the other, printing a line the second time
    first, _ = invoke(cloud, name, {"action": "ok"})
    assert function.stats.cold_starts == 1
    second, error = invoke(cloud, name, {"action": "print", "line": line})

    # Then the second invocation ran in the same, warm environment
    assert error is None
    assert function.stats.cold_starts == 1
    assert second["environment"] == first["environment"]
    # and the printed line reaches the function's log group, in the environment's log stream
    configuration = cloud.client("lambda").get_function_configuration(FunctionName=name)
    group = (configuration.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}"
    assert second["log_group_name"] == group
    logs = cloud.client("logs")

    def logged() -> list[dict[str, Any]]:
        events = logs.filter_log_events(logGroupName=group).get("events", [])
        return [e for e in events if line in e["message"]]

    cloud.wait_until(lambda: bool(logged()), 30, f"{line!r} in {group}")
    assert logged()[0]["logStreamName"] == second["log_stream_name"]


def test_a_module_missing_from_the_deployment_package_fails_with_import_module_error(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """A handler importing a package its deployment package lacks fails with Runtime.ImportModuleError."""
    # Given a function whose handler module imports requests, which its asset does not contain
    # (though this machine has it installed)
    assert importlib.util.find_spec("requests") is not None

    # When it is invoked
    payload, error = invoke(cloud, conformance["ImportProbeName"], {"action": "ok"})

    # Then the invoke fails as Lambda's Python runtime reports it
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'needs_requests': No module named 'requests'"


def test_a_deployed_function_keeps_its_tracing_configuration(cloud: LocalCloud) -> None:
    """AWS::Lambda::Function TracingConfig: GetFunction reports the deployed mode (the example's
    functions trace Active, and Lambda then sends traces as the execution role)."""
    lambda_ = cloud.client("lambda")
    names = [
        f["FunctionName"] for f in lambda_.list_functions()["Functions"] if "ApiHandler" in f["FunctionName"]
    ]
    assert names
    assert lambda_.get_function(FunctionName=names[0])["Configuration"]["TracingConfig"] == {"Mode": "Active"}
