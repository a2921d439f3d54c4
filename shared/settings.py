"""Configuration from the environment, validated once per cold start.

The stack sets these variables on every queue consumer (see ``infra/work_queue.py``);
a missing or malformed one fails the cold start with a message naming it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

# Every dead-letter queue of the stack carries this tag, so tools (the local dashboard, an
# operator's script) find them all, including those no redrive policy names.
DEAD_LETTER_QUEUE_TAG = "asyncstack:dead-letter-queue"
# A consumer stops taking records this long before its deadline: the longest one record can take.
SHUTDOWN_MARGIN_VARIABLE = "SHUTDOWN_MARGIN_MS"


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    queue_url: str = Field(alias="QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    idempotency_table_name: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE_NAME")
    # Long enough to cover the source queue's retention: a duplicate can arrive until then.
    idempotency_ttl_seconds: int = Field(default=4 * 24 * 3600, alias="IDEMPOTENCY_TTL_SECONDS", gt=0)
    backoff_base_seconds: int = Field(default=2, alias="BACKOFF_BASE_SECONDS", ge=0)
    backoff_max_seconds: int = Field(default=900, alias="BACKOFF_MAX_SECONDS", ge=0, le=43_200)
    shutdown_margin_ms: int = Field(default=3_000, alias="SHUTDOWN_MARGIN_MS", ge=0)

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate(dict(os.environ))


@cache
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings.from_env()


def table_name(variable: str) -> str:
    """A table name the stack passes in ``variable``; a clear error if it is missing."""
    value = os.environ.get(variable, "")
    if not value:
        raise RuntimeError(
            f"environment variable {variable} is not set: the stack passes it to this function"
        )
    return value
