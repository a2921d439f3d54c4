"""A pipe's enrichment: each SQS record's JSON body, marked as enriched."""

from __future__ import annotations

import json
from typing import Any


def handler(event: list[dict[str, Any]], context: Any) -> list[dict[str, Any]]:
    return [{"order": json.loads(record["body"]), "enriched": True} for record in event]
