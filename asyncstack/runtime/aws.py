"""boto3 clients, created on first use and cached per execution environment.

Never at import time: a client made at import costs cold start for paths that never use it
and binds to whatever endpoint existed then, which breaks moto and the local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = ["SDK_MAX_ATTEMPTS", "client", "error_code", "reset_clients"]

# Every call is tried at most this many times in all, the first included ("standard" mode backs off with
# jitter). Botocore's ``max_attempts`` would count retries only (one more request): ``total_max_attempts``
# is what this number means.
SDK_MAX_ATTEMPTS = 3
_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": SDK_MAX_ATTEMPTS}, connect_timeout=2, read_timeout=10
)


@cache
def client(service: str) -> Any:
    """A cached client for ``service``; honours ``AWS_ENDPOINT_URL`` like every AWS SDK."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    client.cache_clear()


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call (``ConditionalCheckFailedException``...), or ""."""
    return str(error.response.get("Error", {}).get("Code", ""))
