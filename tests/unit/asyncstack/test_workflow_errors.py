"""Which AWS failures a workflow step retries (asyncstack.runtime.workflows.transient_aws_errors)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.workflows import is_transient_aws_error, transient_aws_errors

pytestmark = pytest.mark.unit


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "-"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError({**response, **extra}, "Operation")


def cancelled(*reasons: str) -> ClientError:
    return client_error("TransactionCanceledException", CancellationReasons=[{"Code": r} for r in reasons])


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("ThrottlingException"), True),
        (client_error("ProvisionedThroughputExceededException"), True),
        (client_error("RequestLimitExceeded"), True),
        (client_error("ServiceUnavailable", 503), True),
        (client_error("SomethingNew", 502), True),  # any 5xx
        (cancelled("None", "ThrottlingError"), True),
        (cancelled("TransactionConflict"), True),
        (ReadTimeoutError(endpoint_url="https://dynamodb"), True),
        (ConnectTimeoutError(endpoint_url="https://dynamodb"), True),
        (EndpointConnectionError(endpoint_url="https://dynamodb"), True),
        (ConnectionClosedError(endpoint_url="https://dynamodb"), True),
        (client_error("AccessDeniedException"), False),
        (client_error("ValidationException"), False),
        (client_error("ConditionalCheckFailedException"), False),
        (cancelled("None", "ConditionalCheckFailed"), False),  # a business answer, not contention
        (cancelled(), False),
        (ValueError("not AWS"), False),
    ],
)
def test_transient_aws_errors_are_recognised(error: BaseException, transient: bool) -> None:
    assert is_transient_aws_error(error) is transient


def test_the_decorator_raises_transient_failures_as_transient_error_and_leaves_the_rest() -> None:
    def failing(error: BaseException) -> None:
        raise error

    step = transient_aws_errors(failing)
    with pytest.raises(TransientError) as raised:
        step(ReadTimeoutError(endpoint_url="https://dynamodb"))
    assert isinstance(raised.value.__cause__, ReadTimeoutError)
    with pytest.raises(ClientError):
        step(client_error("AccessDeniedException"))
    assert step.__name__ == "failing"
