"""The local cloud's command line and request accounting, without a running cloud."""

from __future__ import annotations

import io
import socket

import pytest

from localcloud.__main__ import _pick, main, parse_context, parser
from localcloud.server import ApiCallCounter, LocalCloudError, free_port

pytestmark = pytest.mark.unit


def _environ(**values: str) -> dict[str, object]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        **values,
        "wsgi.input": io.BytesIO(),
    }


@pytest.mark.parametrize(
    ("environ", "body", "expected"),
    [
        (_environ(HTTP_X_AMZ_TARGET="AmazonSQS.ReceiveMessage",
                  HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=k/20261129/us-east-1/sqs/aws4_request, ..."),
         b"{}", ("sqs", "ReceiveMessage")),
        (_environ(HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=k/20261129/us-east-1/sns/aws4_request"),
         b"Action=PublishBatch&Version=2010-03-31", ("sns", "PublishBatch")),
        (_environ(PATH_INFO="/2015-03-31/functions/fn/invocations",
                  HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=k/20261129/us-east-1/lambda/aws4_request"),
         b"{}", ("lambda", "Invoke")),
        (_environ(REQUEST_METHOD="PUT", PATH_INFO="/bucket/key",
                  HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=k/20261129/us-east-1/s3/aws4_request"),
         b"", ("s3", "PUT /bucket")),
    ],
)  # fmt: skip
def test_api_calls_are_counted_by_service_and_operation(environ, body, expected) -> None:
    # Given requests as the AWS SDKs sign them (JSON, query, REST protocols)
    counter = ApiCallCounter()
    # When they are classified and counted
    counter.count(environ, body)
    # Then the service comes from the credential scope and the operation from the protocol
    service, operation = expected
    assert counter.snapshot() == {service: {operation: 1}}


def test_a_command_without_a_running_cloud_prints_one_line_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given nothing listening on a free port
    endpoint = f"http://127.0.0.1:{free_port()}"
    # When `status` asks it
    code = main(["status", "--endpoint", endpoint])
    # Then one line says what is wrong and how to fix it, and the exit status is non-zero
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"error: no local cloud answers at {endpoint}: start one with `localcloud up`"]


def test_an_unreadable_event_file_is_one_clear_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a file that is not JSON
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    # When it is invoked with (the file is read before any call to the cloud)
    code = main(["invoke", "Inventory", str(bad), "--endpoint", f"http://127.0.0.1:{free_port()}"])
    # Then the error names the file and the fix
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {bad} is not valid JSON")
    assert err.strip().endswith("fix the file and try again")
    assert err.count("\n") == 1


def test_targets_are_picked_by_exact_name_or_a_unique_part() -> None:
    outputs = {
        "OrdersTopicArn": "arn:topic",
        "InventoryQueueUrl": "url-1",
        "InventoryDeadLetterQueueUrl": "url-2",
    }
    assert _pick("target", "OrdersTopicArn", outputs) == "arn:topic"
    assert _pick("target", "orderstopic", outputs) == "arn:topic"
    with pytest.raises(
        LocalCloudError,
        match="matches several: valid targets are InventoryDeadLetterQueueUrl, InventoryQueueUrl",
    ):
        _pick("target", "Inventory", outputs)
    with pytest.raises(LocalCloudError, match="is not one of them: valid targets are"):
        _pick("target", "Nope", outputs)


def test_up_on_a_port_in_use_prints_one_line_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    # Given something already listening on the port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When the local cloud is asked to start there
        code = main(["up", "--port", str(port), "--api-port", str(free_port()), "--no-deploy"])
    # Then it says which port and what to do, in one line, and exits non-zero
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith(f"error: port {port} on 127.0.0.1 is in use")
    assert err[0].endswith("stop what runs there or pick another port")


def test_up_outside_a_cdk_app_says_where_to_run_it(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a folder without cdk.json
    # When `up` is asked to deploy the app there
    code = main(["up", "--app", str(tmp_path), "--port", str(free_port()), "--api-port", str(free_port())])
    # Then one line says so and how to fix it, and nothing was started
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: {tmp_path} has no cdk.json: run `localcloud up` in your CDK app's folder or give it with --app DIR"
    ]


def test_up_takes_the_app_its_stacks_and_context() -> None:
    args = parser().parse_args(
        ["up", "--app", "../shop", "--stack", "Orders", "--stack", "Billing", "--context", "stage=local",
         "--context", "flags=a=b", "--api-id", "abc123"]
    )  # fmt: skip
    assert (args.app, args.stacks, args.api_id) == ("../shop", ["Orders", "Billing"], "abc123")
    assert parse_context(args.context) == {"stage": "local", "flags": "a=b"}
    with pytest.raises(LocalCloudError, match="--context 'stage' is not KEY=VALUE"):
        parse_context(["stage"])


def test_the_cli_is_the_local_clouds_only() -> None:
    # The example's demo, chaos run, cost model and benchmarks have their own command lines
    [commands] = [action for action in parser()._actions if action.dest == "command"]
    assert sorted(commands.choices) == [  # type: ignore[attr-defined]
        "advance-clock", "dashboard-key", "invoke", "redrive", "send", "status", "up",
    ]  # fmt: skip
