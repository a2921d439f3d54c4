"""A second `cdk deploy` after a code change: the local cloud runs the new artifact, not the warm old one."""

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
stack = Stack(app, "RedeployStack")
function = lambda_.Function(
    stack, "Versioned", runtime=lambda_.Runtime.PYTHON_3_11, handler="handler.handler",
    code=lambda_.Code.from_asset(sys.argv[1]), timeout=Duration.seconds(5),
)
CfnOutput(stack, "FunctionName", value=function.function_name)
app.synth()
"""


def _write_code(folder: Path, version: str) -> None:
    (folder / "handler.py").write_text(
        f"def handler(event, context):\n    return {{'version': {version!r}}}\n"
    )


def test_a_redeploy_after_a_code_change_runs_the_new_code(cloud: LocalCloud, tmp_path: Path) -> None:
    """CloudFormation updates a function's code on deploy; the next invocation runs the new artifact."""
    # Given a function deployed with `cdk deploy` and warm after one invocation
    code = tmp_path / "code"
    code.mkdir()
    app = tmp_path / "app.py"
    app.write_text(APP)
    _write_code(code, "v1")
    command = f"{sys.executable} {app} {code}"
    name = cloud.deploy(["RedeployStack"], app=command).outputs["FunctionName"]
    lambda_ = cloud.client("lambda")

    def invoke() -> dict[str, str]:
        return dict(json.loads(lambda_.invoke(FunctionName=name, Payload=b"{}")["Payload"].read()))

    assert invoke() == {"version": "v1"}
    assert cloud.functions()[name]["cold_starts"] == 1
    # When the code changes and the stack is deployed again
    _write_code(code, "v2")
    report = cloud.deploy(["RedeployStack"], app=command)
    # Then the deploy took a measurable time, the function answers from the new code in a new environment
    assert report.deploy_seconds > 0
    assert invoke() == {"version": "v2"}
    assert cloud.functions()[name]["cold_starts"] == 2
