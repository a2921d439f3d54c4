"""Fixtures of the infra tests: the real app (``app.build_app``), synthesized once per session.

Synthesizing costs seconds (the jsii kernel, the 20+ MB layer asset, cdk-nag), so every test
that looks at the real stack shares one cloud assembly in a temporary folder. A cdk-nag
failure does not stop the session: CDK still writes the template, the template tests run,
and ``test_nag`` reports the findings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

# jsii starts Node.js on the first import of aws_cdk: silence its end-of-life banners first.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk import App
from aws_cdk.assertions import Template

from app import build_app
from asyncstack.cdk.packaging import PackagingError
from tests.infra.template_model import Json, WorkQueueView, work_queues

STACK_NAME = "AsyncStack"


@dataclass(frozen=True)
class SynthesizedApp:
    """The real app after ``app.synth()`` and the cloud assembly it wrote to ``outdir``."""

    app: App
    outdir: Path
    validation_error: str | None  # the ValidationFailed message when a validation plugin failed

    def read_json(self, name: str) -> Any:
        return json.loads((self.outdir / name).read_text())

    @cached_property
    def template(self) -> Json:
        template: Json = self.read_json(f"{STACK_NAME}.template.json")
        return template

    @cached_property
    def validation_report(self) -> Json:
        report: Json = self.read_json("validation-report.json")
        return report

    @cached_property
    def asset_manifest(self) -> Json:
        manifest: Json = self.read_json(f"{STACK_NAME}.assets.json")
        return manifest

    def stack_metadata(self) -> dict[str, list[Json]]:
        """Construct path -> metadata entries of the stack, as the manifest records them."""
        artifact = self.read_json("manifest.json")["artifacts"][STACK_NAME]
        metadata: dict[str, list[Json]] = dict(artifact.get("metadata", {}))
        if "additionalMetadataFile" in artifact:
            for path, entries in self.read_json(artifact["additionalMetadataFile"]).items():
                metadata[path] = metadata.get(path, []) + entries
        return metadata

    def asset_dir(self, code: Json) -> Path:
        """The folder in the cloud assembly that a Lambda ``Code``/``Content`` property deploys."""
        object_key = code["S3Key"]
        for asset in self.asset_manifest["files"].values():
            if any(d["objectKey"] == object_key for d in asset["destinations"].values()):
                return self.outdir / asset["source"]["path"]
        raise AssertionError(f"no asset in the cloud assembly is uploaded as {object_key}")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    outdir = tmp_path_factory.mktemp("cdk.out")
    try:
        app = build_app(outdir=str(outdir))
    except PackagingError as error:
        pytest.fail(f"cannot build the app: {error}")
    validation_error = None
    try:
        app.synth()
    except RuntimeError as error:  # jsii surfaces CDK's ValidationFailed as a RuntimeError
        if "ValidationFailed" not in str(error):
            raise
        validation_error = str(error)
    return SynthesizedApp(app=app, outdir=outdir, validation_error=validation_error)


@pytest.fixture(scope="session")
def template_json(synthesized: SynthesizedApp) -> Json:
    return synthesized.template


@pytest.fixture(scope="session")
def template(template_json: Json) -> Template:
    return Template.from_json(template_json)


@pytest.fixture(scope="session")
def queues(template_json: Json) -> dict[str, WorkQueueView]:
    """The stack's work queues keyed by consumer service name (inventory, email, analytics)."""
    return work_queues(template_json)
