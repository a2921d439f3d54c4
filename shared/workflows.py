"""Starting Step Functions executions once per business key.

A Standard workflow refuses a second execution with the same name (or returns the running one
when the input is the same), so naming the execution after the business key (the order id,
the job id) turns "start it twice" into "start it once", with no extra table.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared import aws

# Step Functions execution names: 1-80 characters, none of whitespace, brackets, wildcards,
# control characters or " # % \ ^ | ~ ` $ & , ; : /. This is the safe subset.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+@-]")
_MAX_NAME = 80


def execution_name(key: str) -> str:
    """A valid execution name for ``key``: the key itself when allowed, else a sanitized form
    with a digest of the original, so two different keys never share a name."""
    if not key:
        raise ValueError("an execution name needs a non-empty key")
    safe = _UNSAFE.sub("-", key)
    if safe == key and len(key) <= _MAX_NAME:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{safe[: _MAX_NAME - len(digest) - 1]}-{digest}"


@dataclass(frozen=True)
class Started:
    execution_arn: str
    name: str
    already_started: bool


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution called ``name`` of ``state_machine_arn`` has (or would have)."""
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def start_once(state_machine_arn: str, key: str, payload: Any, *, client: Any = None) -> Started:
    """Start the execution for ``key`` unless one was started before; either way return it."""
    sfn = client or aws.client("stepfunctions")
    name = execution_name(key)
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return Started(execution_arn(state_machine_arn, name), name, already_started=True)
    return Started(response["executionArn"], name, already_started=False)
