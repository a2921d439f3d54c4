"""moto configured for the local cloud, and every service's patches installed.

Each service's patches live in its own folder (``localcloud/<service>/patches.py``), each small and
saying which AWS behaviour it restores. ``apply`` is idempotent and must run before moto builds its
CloudFormation model map (first stack operation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from localcloud.awslambda import patches as awslambda
from localcloud.cloudformation import patches as cloudformation
from localcloud.dynamodb import patches as dynamodb
from localcloud.events import patches as events
from localcloud.kinesis import streams as kinesis
from localcloud.s3 import patches as s3
from localcloud.sns import patches as sns
from localcloud.sqs import patches as sqs
from localcloud.stepfunctions import patches as stepfunctions

_applied: list[bool] = []


@contextmanager
def aws_managed_policies() -> Iterator[None]:
    """While a local cloud runs, roles get the AWS managed policies their templates attach
    (AWSLambdaBasicExecutionRole, ...): the permissions the endpoint authorises against. Loading them
    takes about a second per IAM backend, so other moto users of the process (tests) are spared it."""
    from moto.core.config import default_user_config

    saved = default_user_config["iam"]["load_aws_managed_policies"]
    default_user_config["iam"]["load_aws_managed_policies"] = True
    try:
        yield
    finally:
        default_user_config["iam"]["load_aws_managed_policies"] = saved


def apply(port: int) -> None:
    """Configure moto for the local cloud on ``port`` and install the patches (once per process)."""
    from moto.core.config import default_user_config

    # Step Functions' interpreter calls other services (Lambda) through this port.
    os.environ["MOTO_PORT"] = str(port)
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    # Kept on: with it off, moto swaps in a Lambda backend that answers every invoke with canned
    # text. Docker itself is never reached: the Lambda patches replace the only caller.
    default_user_config["lambda"]["use_docker"] = True
    if _applied:
        return
    _applied.append(True)
    cloudformation.apply()  # first: the resource types register before any stack operation
    for service in (stepfunctions, sns, events, awslambda, sqs, dynamodb, kinesis, s3):
        service.apply()
