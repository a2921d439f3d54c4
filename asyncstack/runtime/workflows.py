"""Workflow helpers: starting executions once per business key, and step errors a retry can fix.

A Standard workflow refuses a second execution with the same name (or returns the running one
when the input is the same), so naming the execution after the business key (the order id,
the job id) turns "start it twice" into "start it once", with no extra table.

A Lambda task's error name is the exception's class name, and a workflow retries only the names
in its retry lists. ``transient_aws_errors`` turns AWS failures a later try can fix (throttling,
5xx, timeouts) that outlasted the SDK's own retries into ``TransientError``, which every step's
retry list names; anything else (access denied, a validation error) still fails the step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as AwsConnectionError

from asyncstack.runtime import aws
from asyncstack.runtime.errors import TransientError

P = ParamSpec("P")
R = TypeVar("R")

# What AWS answers when a later try may succeed: throttling, and a busy or failing service.
_RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "RequestThrottled", "SlowDown", "LimitExceededException", "TransactionInProgressException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError",
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
})  # fmt: skip
# TransactWriteItems cancelled only because of contention or throttling: the same transaction can succeed.
_RETRYABLE_CANCELLATIONS = frozenset(
    {"None", "ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"}
)

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


def is_transient_aws_error(error: BaseException) -> bool:
    """True for an AWS failure a later try can fix: a retryable code, a 5xx, or no answer at all."""
    if isinstance(error, AwsConnectionError | HTTPClientError):  # timeouts, refused, reset connections
        return True
    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code == "TransactionCanceledException":
        reasons = {str(r.get("Code") or "None") for r in error.response.get("CancellationReasons") or []}
        return bool(reasons) and reasons <= _RETRYABLE_CANCELLATIONS
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code in _RETRYABLE_CODES or status >= 500


def transient_aws_errors(step: Callable[P, R]) -> Callable[P, R]:
    """Raise a workflow step's transient AWS failures as ``TransientError``, so its retries cover them."""

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except (ClientError, AwsConnectionError, HTTPClientError) as error:
            if not is_transient_aws_error(error):
                raise
            raise TransientError(f"AWS failure worth retrying: {type(error).__name__}: {error}") from error

    return run
