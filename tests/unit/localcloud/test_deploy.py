"""Deploying any CDK app: which CDK CLI, which stacks, what is refused before the CLI runs, and the
workdir a deploy's functions run from."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from localcloud.awslambda.runtime import Artifacts
from localcloud.cloud import LocalCloud, assembly_stacks, cdk_cli
from localcloud.server import LocalCloudError, free_port

pytestmark = pytest.mark.unit


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_cdk_cli_is_the_one_the_app_pins_here_or_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a project whose package.json pinned the CLI at its root, an app in a subfolder, and
    # another CLI on PATH
    pinned = executable(tmp_path / "project" / "node_modules" / ".bin" / "cdk")
    app = tmp_path / "project" / "apps" / "orders"
    app.mkdir(parents=True)
    monkeypatch.setenv("PATH", str(executable(tmp_path / "bin" / "cdk").parent))
    # Then the app's deploys use the pinned one; an app outside the project the one on PATH
    assert cdk_cli(app) == pinned
    assert cdk_cli(tmp_path / "bin") == tmp_path / "bin" / "cdk"


def test_without_a_cdk_cli_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LocalCloudError, match=r"no CDK CLI: .* `npm ci`"):
        cdk_cli(tmp_path)


def test_deploying_every_stack_reports_the_assemblys_stacks(tmp_path: Path) -> None:
    # Given a synthesized assembly with two stacks (one named apart from its id) and other artifacts
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "artifacts": {
                    "Orders": {"type": "aws:cloudformation:stack"},
                    "BillingId": {"type": "aws:cloudformation:stack", "properties": {"stackName": "Billing"}},
                    "Orders.assets": {"type": "cdk:asset-manifest"},
                    "Tree": {"type": "cdk:tree"},
                }
            }
        )
    )
    # Then the stacks are those of the assembly, by stack name
    assert assembly_stacks(tmp_path) == ["Billing", "Orders"]


def test_a_folder_without_cdk_json_is_refused_before_the_cli_runs(tmp_path: Path) -> None:
    cloud = LocalCloud(port=free_port(), api_port=None, workdir=tmp_path / "cloud", extensions=[])
    with pytest.raises(LocalCloudError, match=r"has no cdk\.json"):
        cloud.deploy(app_dir=tmp_path)


def test_the_runtime_packages_a_workdir_holds_are_this_interpreters(tmp_path: Path) -> None:
    # Given a workdir another interpreter used, whose links lead to a venv that is gone
    stale = tmp_path / "runtime-packages"
    stale.mkdir()
    (stale / "boto3").symlink_to(tmp_path / "deleted-venv" / "boto3")
    artifacts = Artifacts(tmp_path)
    # When the runtime asks for the packages Lambda provides
    folder = artifacts.runtime_packages()
    # Then it gets links to this interpreter's own, every one resolving
    assert (folder / "boto3").resolve() == Path(boto3.__file__).parent.resolve()
    assert all(link.exists() for link in folder.iterdir())
    assert artifacts.runtime_packages() == folder  # made once
