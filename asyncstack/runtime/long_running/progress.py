"""Progress of a long-running job, as plain arithmetic (no AWS), so every edge case is unit tested.

Rules the numbers follow, because a progress bar that lies is worse than none:

* ``percent`` has one decimal, rounded half up, and reads 100 only when the job is done: a job
  with its last rows written but the report not yet assembled shows at most 99.9;
* the total is counted once, at the start; rows added while the job runs can push ``current``
  past it, and then the total is raised to ``current`` rather than showing more than 100 %;
* ``eta_seconds`` extrapolates the rate over the time actually spent processing (summed over the
  job's runs), not the wall clock since creation, so a pause between a crash and its retry does
  not make the job look slower; before the first chunk there is no rate and no estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Self

from asyncstack.runtime.timestamps import iso

__all__ = ["DONE_PERCENT", "NOT_DONE_CAP", "Progress", "eta_seconds", "percent_done"]

DONE_PERCENT = 100.0
# The highest percent a job that is not done can show (99.95 would otherwise round to 100.0).
NOT_DONE_CAP = 99.9
_ONE_DECIMAL = Decimal("0.1")


def percent_done(current: int, total: int | None, *, done: bool = False) -> float:
    """``current`` of ``total`` as a percentage with one decimal; exactly 100 only when ``done``."""
    if done:
        return DONE_PERCENT
    if total is None:
        return 0.0
    effective_total = max(total, current)
    if effective_total <= 0:
        return 0.0
    exact = Decimal(100 * current) / Decimal(effective_total)  # integers in, so no float drift
    return min(float(exact.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP)), NOT_DONE_CAP)


def eta_seconds(current: int, total: int | None, processing_ms: float) -> float | None:
    """Seconds left at the average rate so far; None while there is no rate (or no total) yet."""
    if total is None or current <= 0:
        return None
    remaining = max(total - current, 0)
    seconds = Decimal(remaining) * Decimal(str(max(processing_ms, 0))) / Decimal(current) / 1000
    return float(seconds.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP))


@dataclass(frozen=True, kw_only=True)
class Progress:
    """A job's progress as stored on the job item and shown to whoever polls the job."""

    current: int = 0
    total: int | None = None
    percent: float = 0.0
    eta_seconds: float | None = None
    updated_at: str | None = None

    def with_total(self, total: int, *, now: datetime) -> Progress:
        """The total, once counted; percent and ETA follow from it."""
        total = max(total, self.current)
        return replace(
            self,
            total=total,
            percent=percent_done(self.current, total),
            updated_at=iso(now),
        )

    def after_chunk(self, *, current: int, processing_ms: float, now: datetime) -> Progress:
        """Progress once ``current`` items are done, having spent ``processing_ms`` on them in all.

        ``current`` is absolute (the checkpoint's row count), not an increment: a chunk redone after
        a crash must not be counted twice.
        """
        total = None if self.total is None else max(self.total, current)
        return Progress(
            current=current,
            total=total,
            percent=percent_done(current, total),
            eta_seconds=eta_seconds(current, total, processing_ms),
            updated_at=iso(now),
        )

    def finished(self, *, current: int, now: datetime) -> Progress:
        """The final progress: everything there was is done, so the total is what was exported."""
        return Progress(
            current=current, total=current, percent=DONE_PERCENT, eta_seconds=0.0, updated_at=iso(now)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "total": self.total,
            "percent": self.percent,
            "eta_seconds": self.eta_seconds,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Read back what ``as_dict`` stored (DynamoDB numbers come back as ``Decimal``)."""
        data = data or {}
        total = data.get("total")
        eta = data.get("eta_seconds")
        return cls(
            current=int(data.get("current") or 0),
            total=None if total is None else int(total),
            percent=float(data.get("percent") or 0),
            eta_seconds=None if eta is None else float(eta),
            updated_at=data.get("updated_at"),
        )
