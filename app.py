#!/usr/bin/env python3
"""The CDK app. Synthesizes offline: no AWS calls, no Docker (``make synth``)."""

from __future__ import annotations

import os

from aws_cdk import App, Aspects, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.packaging import LambdaTarget, default_target
from infra.rules import QueueConsumerRules
from infra.stack import AsyncStack


def build_app(context: dict[str, str] | None = None, outdir: str | None = None) -> App:
    app = App(context=context, outdir=outdir)
    default = default_target()
    target = LambdaTarget(
        str(app.node.try_get_context("asyncstack:lambdaPython") or default.python),
        str(app.node.try_get_context("asyncstack:lambdaArchitecture") or default.architecture),
    )
    # Account and region come from the CLI's environment at deploy time; nothing is looked up.
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    AsyncStack(
        app, "AsyncStack", target=target, env=env, description="asyncstack: serverless event processing"
    )
    Aspects.of(app).add(QueueConsumerRules())
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
