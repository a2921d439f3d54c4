"""Time as the runtime stores and sends it: aware UTC datetimes, written as ISO 8601 with a ``Z``.

One spelling everywhere (job items, webhook events, progress), so stored times compare as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "utc_now"]


def utc_now() -> datetime:
    """Now, timezone-aware: the default clock wherever a clock can be injected."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with ``Z`` (``2030-01-01T12:00:00Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
