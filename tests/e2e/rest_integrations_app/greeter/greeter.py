"""A function behind a non-proxy integration: the event is what the request template built."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    name = str(event.get("name") or "")
    if not name.isalpha():
        raise ValueError(f"Invalid name: {name}")
    return {"greeting": f"hello {name}"}
