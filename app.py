#!/usr/bin/env python3
"""The CDK app. Synthesizes offline: no AWS calls, no Docker (``make synth``)."""

from __future__ import annotations

import os

from aws_cdk import App, Environment

from asyncstack.cdk.job_api import ApiAuth
from asyncstack.cdk.packaging import deployed_locally, target_for
from asyncstack.cdk.rules import apply_rules
from infra.stack import AsyncStack

# "api_key" (default) or "iam": how the job API authorises callers.
API_AUTH_CONTEXT = "asyncstack:apiAuth"
# Comma-separated addresses subscribed by email to the alarm topic (each confirms by mail).
ALARM_EMAIL_CONTEXT = "asyncstack:alarmEmail"


def build_app(context: dict[str, str] | None = None, outdir: str | None = None) -> App:
    app = App(context=context, outdir=outdir)
    local_cloud = deployed_locally(app)
    # The local cloud runs functions on this machine's interpreter, whatever cdk.json names for AWS.
    target = target_for(app)
    # Account and region come from the CLI's environment at deploy time; nothing is looked up.
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    AsyncStack(
        app, "AsyncStack", target=target, env=env, description="asyncstack: serverless event processing",
        api_auth=ApiAuth(str(app.node.try_get_context(API_AUTH_CONTEXT) or ApiAuth.API_KEY.value)),
        # Only locally may webhook callbacks be plain HTTP to loopback (the local receivers).
        allow_insecure_callbacks=local_cloud,
        alarm_emails=[e.strip() for e in str(app.node.try_get_context(ALARM_EMAIL_CONTEXT) or "").split(",") if e.strip()],
    )  # fmt: skip
    apply_rules(app)
    return app


if __name__ == "__main__":
    build_app().synth()
