"""A webhook's state as the thing it is about records it: where it goes, its status, every attempt.

``pending`` (nothing to send yet) -> ``scheduled`` (a delivery attempt is queued) -> ``delivered``, or
``callback_failed`` after the last attempt (or at once if the callback became unsafe).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FINAL_STATUSES", "DeliveryAttempt", "WebhookState", "WebhookStatus"]


class WebhookStatus(enum.StrEnum):
    PENDING = "pending"  # what it is about has not ended yet
    SCHEDULED = "scheduled"  # a delivery attempt is queued
    DELIVERED = "delivered"
    CALLBACK_FAILED = "callback_failed"  # every attempt failed, or the callback became unsafe


FINAL_STATUSES = frozenset({WebhookStatus.DELIVERED, WebhookStatus.CALLBACK_FAILED})


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt: when, the receiver's HTTP status if it answered, else why not."""

    attempt: int
    at: str | None = None
    status_code: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": self.at, "status_code": self.status_code, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryAttempt:
        return cls(
            attempt=int(data.get("attempt") or 0),
            at=data.get("at"),
            status_code=data.get("status_code"),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class WebhookState:
    """The webhook section of what it is about (a long-running job's ``webhook``)."""

    callback_url: str | None
    status: WebhookStatus
    attempts: tuple[DeliveryAttempt, ...] = ()
    delivered_at: str | None = None

    @classmethod
    def pending(cls, callback_url: str) -> WebhookState:
        """A new webhook: nothing sent, nothing queued."""
        return cls(callback_url=callback_url, status=WebhookStatus.PENDING)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookState:
        return cls(
            callback_url=data.get("callback_url"),
            status=WebhookStatus(data["status"]),
            attempts=tuple(DeliveryAttempt.from_dict(attempt) for attempt in data.get("attempts") or []),
            delivered_at=data.get("delivered_at"),
        )

    def as_dict(self) -> dict[str, Any]:
        """As callers see it (and as it is stored, ``delivered_at`` once delivered)."""
        return {
            "callback_url": self.callback_url,
            "status": self.status.value,
            "attempts": [attempt.as_dict() for attempt in self.attempts],
            "delivered_at": self.delivered_at,
        }

    def recorded(self, attempt: int) -> DeliveryAttempt | None:
        """Attempt ``attempt`` as recorded, if it was."""
        return next((a for a in self.attempts if a.attempt == attempt), None)
