"""Answers with the event it got; ``?plain=1`` returns an object without a statusCode."""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    if (event.get("queryStringParameters") or {}).get("plain"):
        return {"plain": True}
    answer = {"headers": {"Content-Type": "application/json", "X-Echo": "yes"}, "body": json.dumps(event)}
    if event.get("version") == "1.0":
        return answer | {"statusCode": 201}
    return answer | {"statusCode": 200, "cookies": ["session=abc; Path=/"]}
