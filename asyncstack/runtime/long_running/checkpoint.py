"""Where the next run of a job resumes: the chunk to do next and where in the source it starts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """``last_key``: the source's pagination key the next chunk starts from (a DynamoDB
    ``LastEvaluatedKey``, a cursor), None before the first chunk and after the last; ``rows``: how many
    rows the chunks done so far produced."""

    next_chunk: int = 0
    last_key: Any = None
    rows: int = 0

    @property
    def finished(self) -> bool:
        """Every chunk is done: every page but the last has a next key, so "a chunk done and no key" is the end."""
        return self.next_chunk > 0 and self.last_key is None

    def as_item(self) -> dict[str, Any]:
        """As stored on the job: the key as JSON text, so any source's key fits."""
        last_key = None if self.last_key is None else json.dumps(self.last_key, sort_keys=True)
        return {"next_chunk": self.next_chunk, "last_key": last_key, "rows": self.rows}

    @classmethod
    def from_item(cls, data: Mapping[str, Any] | None) -> Checkpoint:
        data = data or {}
        last_key = data.get("last_key")
        return cls(
            next_chunk=int(data.get("next_chunk") or 0),
            last_key=json.loads(last_key) if last_key else None,
            rows=int(data.get("rows") or 0),
        )
