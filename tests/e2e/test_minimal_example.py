"""``localcloud up --app examples/minimal``, as a user runs it: the console script deploys an app built on
asyncstack from outside the example, with its own CDK CLI, and its worker processes an event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.server import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "minimal"
LOCALCLOUD = Path(sys.executable).with_name("localcloud")  # the console script of `pip install`
READY_SECONDS = 600


class UpProcess:
    """`localcloud up` in the background; its output is kept to explain a failure."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.output: list[str] = []
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "LOCALCLOUD_STATE_DIR": str(workdir)}  # fmt: skip
        self.process = subprocess.Popen(
            [str(LOCALCLOUD), "up", "--app", str(APP), "--port", str(port), "--api-port", str(free_port()),
             "--dashboard-port", str(free_port()), "--quiet"],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def wait_ready(self) -> dict[str, str]:
        """The stack outputs ``up`` prints once the app is deployed."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_SECONDS
        outputs: dict[str, str] = {}
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if line.startswith("  ") and len(line.split()) == 2:
                name, value = line.split()
                outputs[name] = value
            if line.startswith("try: localcloud status"):
                return outputs
            assert time.monotonic() < deadline, self.log()
        raise AssertionError(f"localcloud up exited with {self.process.wait()}:\n{self.log()}")

    def log(self) -> str:
        return "\n".join(self.output[-40:])

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, dict[str, str]]]:
    process = UpProcess(free_port(), tmp_path_factory.mktemp("minimal"))
    try:
        yield process, process.wait_ready()
    finally:
        process.stop()


def client(service: str, port: int) -> Any:
    make: Any = boto3.client
    return make(
        service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def test_the_minimal_app_deploys_with_localcloud_up_and_its_worker_processes_an_event(
    up: tuple[UpProcess, dict[str, str]],
) -> None:
    process, outputs = up
    # Given the minimal app deployed by `localcloud up --app examples/minimal`
    assert {"QueueUrl", "GreetingsTableName"} <= set(outputs), process.log()
    sqs, dynamodb = client("sqs", process.port), client("dynamodb", process.port)
    # When a greeting event and a malformed one are sent to its queue
    event = {"event_id": f"greet-{uuid.uuid4().hex[:8]}", "type": "greeting.requested", "source": "tests",
             "occurred_at": datetime.now(UTC).isoformat(), "data": {"name": "Ada"}}  # fmt: skip
    sqs.send_message(QueueUrl=outputs["QueueUrl"], MessageBody=json.dumps(event))
    sqs.send_message(QueueUrl=outputs["QueueUrl"], MessageBody="{not json")
    # Then the worker records the greeting under the event's id
    item = wait_for(
        lambda: dynamodb.get_item(TableName=outputs["GreetingsTableName"], Key={"name": {"S": "Ada"}}).get(
            "Item"
        ),
        "the greeting",
    )
    assert item["event_id"] == {"S": event["event_id"]}
    # And the malformed message is in the dead-letter queue at once, with its reason (not retried 5 times)
    dlq_url = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["RedrivePolicy"])
    dead_letter_arn = json.loads(dlq_url["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
    dlq = sqs.get_queue_url(QueueName=dead_letter_arn.rsplit(":", 1)[-1])["QueueUrl"]
    [dead] = wait_for(
        lambda: sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"]).get("Messages"),
        "the dead letter",
    )
    assert dead["Body"] == "{not json"
    assert dead["MessageAttributes"]["error-type"]["StringValue"] == "MalformedJson"
