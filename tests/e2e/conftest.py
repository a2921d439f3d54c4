"""One local cloud for the whole e2e package: started once, the stacks deployed with the CDK CLI once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo import example
from localcloud.cloud import LocalCloud
from localcloud.server import free_port

CONFORMANCE_APP = Path(__file__).resolve().parent / "conformance" / "app.py"


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The local cloud with the example's AsyncStack deployed by ``cdk deploy``, as ``make up`` runs it."""
    with LocalCloud(
        port=free_port(), api_port=free_port(), dashboard_port=free_port(),
        workdir=tmp_path_factory.mktemp("localcloud"),
    ) as local:  # fmt: skip
        example.deploy(local)
        yield local


@pytest.fixture(scope="package")
def conformance(cloud: LocalCloud) -> dict[str, str]:
    """The conformance stack (small probe functions wired to every integration) deployed next to it; its outputs."""
    report = cloud.deploy(["ConformanceStack"], app=f"{sys.executable} {CONFORMANCE_APP}")
    return report.outputs
