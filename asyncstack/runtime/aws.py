"""boto3 clients, created on first use and cached per execution environment.

Never at import time: a client made at import costs cold start for paths that never use it
and binds to whatever endpoint existed then, which breaks moto and the local cloud.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Lambda's SDK defaults retry 3 times in "legacy" mode; adaptive/standard backs off properly.
SDK_MAX_ATTEMPTS = 3
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": SDK_MAX_ATTEMPTS}, connect_timeout=2, read_timeout=10
)


@cache
def client(service: str) -> Any:
    """A cached client for ``service``; honours ``AWS_ENDPOINT_URL`` like every AWS SDK."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    client.cache_clear()
