"""Hot reload (``localcloud up --watch``): an edit to a function's source folder reaches its next
invocation without a redeploy, and the warm environment of the old code is retired."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = """
import sys
from aws_cdk import App, CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_

app = App()
stack = Stack(app, "HotReloadStack")
function = lambda_.Function(
    stack, "Edited", runtime=lambda_.Runtime.PYTHON_3_11, handler="handler.handler",
    code=lambda_.Code.from_asset(sys.argv[1]), timeout=Duration.seconds(5),
)
CfnOutput(stack, "FunctionName", value=function.function_name)
app.synth()
"""


def _write_code(folder: Path, version: str) -> None:
    (folder / "handler.py").write_text(
        f"def handler(event, context):\n    return {{'version': {version!r}}}\n"
    )


def test_an_edit_reaches_the_next_invocation_without_a_redeploy(cloud: LocalCloud, tmp_path: Path) -> None:
    # Given a function deployed with asset staging off (as `up --watch` deploys), warm, and watched
    code = tmp_path / "code"
    code.mkdir()
    app = tmp_path / "app.py"
    app.write_text(APP)
    _write_code(code, "v1")
    name = cloud.deploy(["HotReloadStack"], app=f"{sys.executable} {app} {code}", staging=False).outputs[
        "FunctionName"
    ]
    lambda_ = cloud.client("lambda")

    def invoke() -> dict[str, str]:
        return dict(json.loads(lambda_.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()))

    assert invoke() == {"version": "v1"}
    watcher = cloud.watch_sources()
    assert watcher.seen[name][0] == code
    deployed = lambda_.get_function(FunctionName=name)["Configuration"]["CodeSha256"]
    # When the source is edited
    _write_code(code, "v2")
    # Then the next invocations answer from the edited source, in a new environment, with no deploy
    cloud.wait_until(lambda: invoke() == {"version": "v2"}, 10, "the edited code to answer")
    assert cloud.functions()[name]["cold_starts"] == 2
    assert lambda_.get_function(FunctionName=name)["Configuration"]["CodeSha256"] == deployed
    assert not (code / "__pycache__").exists()  # no bytecode written into the source folder
    # And a second edit of the same length right after (Python's bytecode check would miss it) is run too
    _write_code(code, "v3")
    cloud.wait_until(lambda: invoke() == {"version": "v3"}, 10, "the second edit to answer")
