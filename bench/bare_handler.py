"""The cold-start baseline: a handler module that imports only boto3 (and the standard library)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3


@cache
def _dynamodb() -> Any:
    """A client made on first use, never at import, as ``asyncstack.runtime.aws`` does (the bare handler needs none)."""
    return boto3.session.Session().client("dynamodb")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for record in event.get("Records", []):
        json.loads(record["body"])
    return {"batchItemFailures": []}
