"""``FilterCriteria`` of an SQS event source mapping, as Lambda applies them.

A record is delivered when any filter's pattern matches it, with the EventBridge pattern syntax (moto's
implementation of it). SQS mappings filter on ``body`` only: a body that is a JSON object is matched
against an object pattern, a plain body against a list of string filters; a JSON body never matches a
plain-string pattern nor a plain body an object pattern. Lambda deletes the messages no filter matches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from moto.events.models import EventPattern


def patterns(filter_criteria: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The mapping's filter patterns, parsed (none: every record passes)."""
    return [
        json.loads(f["Pattern"]) for f in (filter_criteria or {}).get("Filters") or [] if f.get("Pattern")
    ]


def _json_object(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def passes(body: str, filters: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a message with ``body`` reaches the function under these filter patterns."""
    if not filters:
        return True
    document = _json_object(body)
    for pattern in filters:
        wanted = pattern.get("body")
        if isinstance(wanted, dict) and document is not None:
            record: Any = {"body": document}
        elif isinstance(wanted, list) and document is None:
            record = {"body": body}
        else:
            continue  # a JSON body against a plain pattern, or the reverse: no match, as Lambda filters
        if EventPattern.load(json.dumps({"body": wanted})).matches_event(record):
            return True
    return False
