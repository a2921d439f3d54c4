#!/usr/bin/env python3
"""The CDK app. Synthesizes offline: no AWS calls, no Docker (``make synth``)."""

from __future__ import annotations

import os

from aws_cdk import Acknowledgment, App, Aspects, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from asyncstack.cdk.alarms import AlarmsNotify
from asyncstack.cdk.job_api import ApiAuth
from asyncstack.cdk.packaging import LambdaTarget, default_target, host_target
from asyncstack.cdk.rules import QueueConsumerRules
from infra.stack import AsyncStack

LOCAL_CLOUD_CONTEXT = "asyncstack:localCloud"
# "api_key" (default) or "iam": how the job API authorises callers.
API_AUTH_CONTEXT = "asyncstack:apiAuth"
# Comma-separated addresses subscribed by email to the alarm topic (each confirms by mail).
ALARM_EMAIL_CONTEXT = "asyncstack:alarmEmail"


def build_app(context: dict[str, str] | None = None, outdir: str | None = None) -> App:
    app = App(context=context, outdir=outdir)
    local_cloud = str(app.node.try_get_context(LOCAL_CLOUD_CONTEXT)).lower() == "true"
    # The local cloud runs functions on this machine's interpreter, whatever cdk.json names for AWS.
    target = host_target() if local_cloud else LambdaTarget(
        str(app.node.try_get_context("asyncstack:lambdaPython") or default_target().python),
        str(app.node.try_get_context("asyncstack:lambdaArchitecture") or default_target().architecture),
    )  # fmt: skip
    # Account and region come from the CLI's environment at deploy time; nothing is looked up.
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    stack = AsyncStack(
        app, "AsyncStack", target=target, env=env, description="asyncstack: serverless event processing",
        api_auth=ApiAuth(str(app.node.try_get_context(API_AUTH_CONTEXT) or ApiAuth.API_KEY.value)),
        # Only locally may webhook callbacks be plain HTTP to loopback (the local receivers).
        allow_insecure_callbacks=local_cloud,
        alarm_emails=[e.strip() for e in str(app.node.try_get_context(ALARM_EMAIL_CONTEXT) or "").split(",") if e.strip()],
    )  # fmt: skip
    if local_cloud:
        Validations.of(stack).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-L1",
                reason="Local-cloud deployments run functions on this machine's Python; "
                "deployments to AWS use the runtime in cdk.json.",
            )
        )
    Aspects.of(app).add(QueueConsumerRules())
    Aspects.of(app).add(AlarmsNotify())
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
