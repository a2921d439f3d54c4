"""The example app (``app.py``, ``infra/``, ``functions/``, ``shared/``) as the demo, the end-to-end
tests and the benchmarks deploy it to a local cloud."""

from __future__ import annotations

from pathlib import Path

from localcloud.cloud import DeployReport, LocalCloud, default_workdir

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"  # the CDK CLI package.json pins
STACK = "AsyncStack"
WORKDIR = default_workdir(ROOT)


def deploy(cloud: LocalCloud) -> DeployReport:
    """The example stack deployed to ``cloud`` with the project's CDK CLI (``cdk synth`` builds the
    functions' dependency layer for this machine, which the local cloud runs them on)."""
    return cloud.deploy([STACK], app_dir=ROOT)
