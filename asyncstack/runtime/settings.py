"""Configuration from the environment: one pydantic model per building block, validated once per cold start.

The constructs of ``asyncstack.cdk`` set the variables (their names are in ``asyncstack.contract``);
a missing or malformed one fails with one ``SettingsError`` naming every variable that is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from asyncstack import contract

__all__ = [
    "ConsumerSettings",
    "EnvironmentSettings",
    "SettingsError",
    "consumer_settings",
    "load",
]

S = TypeVar("S", bound="EnvironmentSettings")


class SettingsError(RuntimeError):
    """The function's environment lacks what its building block needs: the message names each variable."""


class EnvironmentSettings(BaseModel):
    """A building block's settings, read from environment variables named by the fields' aliases."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                name = ".".join(str(part) for part in problem["loc"])
                problems.append(
                    f"{name} is not set" if problem["type"] == "missing" else f"{name}: {problem['msg']}"
                )
            raise SettingsError(
                f"{cls.__name__}: "
                + "; ".join(problems)
                + " (the construct that wires this function sets them)"
            ) from None


@cache
def load(model: type[S]) -> S:
    """``model`` from this environment, validated once per execution environment (cold start)."""
    return model.from_environment()


class ConsumerSettings(EnvironmentSettings):
    """What ``asyncstack.cdk.WorkQueue`` tells the consumer of its queue."""

    queue_url: str = Field(validation_alias=contract.QUEUE_URL, min_length=1)
    dead_letter_queue_url: str = Field(validation_alias=contract.DEAD_LETTER_QUEUE_URL, min_length=1)
    idempotency_table_name: str | None = Field(default=None, validation_alias=contract.IDEMPOTENCY_TABLE_NAME)
    # Long enough to cover the source queue's retention: a duplicate can arrive until then.
    idempotency_ttl_seconds: int = Field(
        default=4 * 24 * 3600, validation_alias=contract.IDEMPOTENCY_TTL_SECONDS, gt=0
    )
    backoff_base_seconds: int = Field(default=2, validation_alias=contract.BACKOFF_BASE_SECONDS, ge=0)
    backoff_max_seconds: int = Field(
        default=900, validation_alias=contract.BACKOFF_MAX_SECONDS, ge=0, le=43_200
    )
    shutdown_margin_ms: int = Field(default=3_000, validation_alias=contract.SHUTDOWN_MARGIN_MS, ge=0)


def consumer_settings() -> ConsumerSettings:
    return load(ConsumerSettings)
