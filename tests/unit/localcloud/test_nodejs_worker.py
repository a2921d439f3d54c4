"""Node.js functions in the local runtime, as Lambda's Node.js runtime runs them: async and callback
handlers, errors by name, Lambda's init errors, the context object, console output in the logs, the
local clock, and modules only from the task folder, the layers and what the runtime provides.

The runtime-provided folder here holds a stand-in module (the real one, the AWS SDK for JavaScript v3,
is installed from the runtime's lock by ``Artifacts.nodejs_packages`` and used by the e2e tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localcloud.awslambda.runtime import ExecutionEnvironment, FunctionConfig, InvocationError
from localcloud.logs import LogSink

pytestmark = pytest.mark.unit

HANDLERS = {
    "index.js": """
const provided = require("provided-package");
exports.handler = async (event, context) => {
  console.log("handled", event.n);
  if (event.fail) {
    const error = new Error("the order was refused");
    error.name = "OrderRefused";
    throw error;
  }
  let leaked = "not found";
  try { require("leaky-package"); leaked = "found"; } catch (error) { leaked = error.code; }
  return {
    n: event.n, provided: provided.name, leaked, now: Date.now(), date: new Date().getTime(),
    isDate: new Date() instanceof Date, functionName: context.functionName,
    requestId: context.awsRequestId, remaining: context.getRemainingTimeInMillis(),
  };
};
""",
    "callback.js": """
exports.handler = (event, context, callback) => {
  setTimeout(() => (event.fail ? callback(new TypeError("bad input")) : callback(null, { doubled: event.n * 2 })), 10);
};
""",
    "respond.js": """
const https = require("https");
exports.handler = (event) => new Promise((resolve, reject) => {
  const request = https.request({ hostname: "127.0.0.1", path: "/answer", method: "PUT" }, (response) => {
    response.resume();
    resolve({ status: response.statusCode });
  });
  request.on("error", reject);
  request.end("{}");
});
""",
}
DAY = 86_400.0


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(task folder, runtime-provided folder); a package sits in a node_modules above the task folder."""
    task = tmp_path / "app" / "task"
    task.mkdir(parents=True)
    for name, code in HANDLERS.items():
        (task / name).write_text(code)
    provided = tmp_path / "provided"
    (provided / "provided-package").mkdir(parents=True)
    (provided / "provided-package" / "index.js").write_text('exports.name = "provided";\n')
    leaky = tmp_path / "app" / "node_modules" / "leaky-package"
    leaky.mkdir(parents=True)
    (leaky / "index.js").write_text("module.exports = {};\n")
    return task, provided


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records the paths it is sent."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                receiver.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def start(folders: tuple[Path, Path], tmp_path: Path) -> Iterator[Callable[..., ExecutionEnvironment]]:
    task, provided = folders
    log = LogSink(tmp_path / "logs")
    receiver = Receiver()
    started: list[ExecutionEnvironment] = []

    def start_environment(handler: str, offset: float = 0.0) -> ExecutionEnvironment:
        config = FunctionConfig(
            arn="arn:aws:lambda:us-east-1:123456789012:function:node-probe", name="node-probe",
            handler=handler, runtime="nodejs20.x", timeout=5.0, memory=256, environment={},
            code_sha="test", layer_arns=(), reserved_concurrency=None, log_group="/aws/lambda/node-probe",
        )  # fmt: skip
        environment = ExecutionEnvironment(
            config, [task, provided], receiver.url, log,
            clock_packages=tmp_path / "unused", clock_offset=lambda: offset,
        )  # fmt: skip
        started.append(environment)
        return environment

    start_environment.receiver = receiver  # type: ignore[attr-defined]
    yield start_environment
    for environment in started:
        environment.kill()
    receiver.server.shutdown()
    log.close()


def test_an_async_handler_answers_with_the_context_of_its_invocation(
    start: Callable[..., ExecutionEnvironment], tmp_path: Path
) -> None:
    # Given a Node.js function whose handler is async
    environment = start("index.handler")
    # When it is invoked twice in the same environment
    first = environment.invoke({"n": 1}, "request-1")
    second = environment.invoke({"n": 2}, "request-2")
    # Then each answer carries its own event and request id, and the deployed function's name
    assert (first["n"], first["requestId"]) == (1, "request-1")
    assert (second["n"], second["requestId"]) == (2, "request-2")
    assert first["functionName"] == "node-probe"
    assert 0 < first["remaining"] <= 5000
    # and the handler's console output went to the function's log, not into the answer
    log = (tmp_path / "logs" / "node-probe.log").read_text()
    assert "handled 1" in log and "handled 2" in log


def test_modules_come_from_the_task_folder_and_what_the_runtime_provides_only(
    start: Callable[..., ExecutionEnvironment],
) -> None:
    # Given a handler that requires a runtime-provided package and one in a node_modules above its folder
    answer = start("index.handler").invoke({"n": 1}, "request-1")
    # Then the provided one loads and the one outside the deployed artifact is not found
    assert answer["provided"] == "provided"
    assert answer["leaked"] == "MODULE_NOT_FOUND"


def test_an_error_is_reported_by_its_name_and_message(start: Callable[..., ExecutionEnvironment]) -> None:
    # Given an async handler and a callback handler that fail
    with pytest.raises(InvocationError) as thrown:
        start("index.handler").invoke({"fail": True}, "request-1")
    with pytest.raises(InvocationError) as called_back:
        start("callback.handler").invoke({"fail": True}, "request-2")
    # Then Lambda's errorType is the error's name, and errorMessage its message
    assert (thrown.value.error_type, thrown.value.message) == ("OrderRefused", "the order was refused")
    assert (called_back.value.error_type, called_back.value.message) == ("TypeError", "bad input")


def test_a_callback_handler_answers_through_its_callback(start: Callable[..., ExecutionEnvironment]) -> None:
    assert start("callback.handler").invoke({"n": 21}, "request-1") == {"doubled": 42}


def test_a_missing_module_or_export_fails_every_invocation_with_lambdas_init_errors(
    start: Callable[..., ExecutionEnvironment],
) -> None:
    with pytest.raises(InvocationError) as missing_module:
        start("absent.handler").invoke({}, "request-1")
    with pytest.raises(InvocationError) as missing_export:
        start("index.absent").invoke({}, "request-2")
    assert missing_module.value.error_type == "Runtime.ImportModuleError"
    assert "Cannot find module 'absent'" in missing_module.value.message
    assert missing_export.value.error_type == "Runtime.HandlerNotFound"


def test_the_handler_reads_the_local_clock(start: Callable[..., ExecutionEnvironment]) -> None:
    # Given an environment whose local clock is two days ahead
    answer = start("index.handler", offset=2 * DAY).invoke({"n": 1}, "request-1")
    # Then Date.now() and new Date() read it, and a new Date is still a Date
    local_ms = (time.time() + 2 * DAY) * 1000
    assert abs(answer["now"] - local_ms) < 5000 and abs(answer["date"] - local_ms) < 5000
    assert answer["isDate"] is True


def test_an_https_request_without_a_port_to_the_endpoints_host_reaches_the_plain_http_endpoint(
    start: Callable[..., ExecutionEnvironment],
) -> None:
    """How CDK's custom resource handlers answer their ResponseURL: https.request({hostname, path})."""
    answer = start("respond.handler").invoke({}, "request-1")
    assert answer == {"status": 200}
    assert start.receiver.paths == ["/answer"]  # type: ignore[attr-defined]
