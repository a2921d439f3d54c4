"""AWS's six-field cron: ``minutes hours day-of-month month day-of-week year``, evaluated in a time zone.

Day-of-week runs 1-7 = SUN-SAT (not Unix's 0-6), one of day-of-month and day-of-week must be ``?``,
and names (JAN-DEC, SUN-SAT), ranges, lists and ``/`` steps are accepted. ``L``, ``W`` and ``#`` are
rejected with ``CronError``. Daylight saving time follows EventBridge Scheduler: a local time that does
not exist (spring forward) is skipped, and a repeated one (fall back) fires once, at its first instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
DAYS = {name: number for number, name in enumerate(_DAY_NAMES, 1)}
# (lowest, highest, names) per field, in expression order.
FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, MONTHS),
    (1, 7, DAYS),
    (1970, 2199, {}),
)


class CronError(ValueError):
    """The expression is not a cron expression this emulator (or AWS) accepts."""


def _value(text: str, names: dict[str, int]) -> int:
    # ASCII only: str.isdigit() accepts "²" (which int() refuses) and "٣", and "\u017fun".upper() (a long s) is "SUN".
    if text.isascii() and text.upper() in names:
        return names[text.upper()]
    if not (text.isascii() and text.isdigit()):
        if any(mark in text.upper() for mark in "LW#"):
            raise CronError(f"L, W and # are not supported by the local scheduler: {text!r}")
        raise CronError(f"not a number or name: {text!r}")
    return int(text)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int] | None:
    """The values a field allows; None for ``?`` (no constraint from this field)."""
    if text == "?":
        return None
    values: set[int] = set()
    for part in text.split(","):
        spec, slash, step_text = part.partition("/")
        step = _value(step_text, {}) if slash else 1
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            first, last = (_value(bound, names) for bound in spec.split("-", 1))
        else:
            first = _value(spec, names)
            last = high if slash else first
        if not low <= first <= last <= high or step < 1:
            raise CronError(f"{part!r} is outside {low}-{high} or not ascending")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None
    months: frozenset[int]
    days_of_week: frozenset[int] | None
    years: frozenset[int]

    @classmethod
    def parse(cls, fields: str) -> Cron:
        """Parse the inside of ``cron(...)``."""
        parts = fields.split()
        if len(parts) != 6:
            raise CronError(f"cron needs 6 fields (min hour day-of-month month day-of-week year): {fields!r}")
        values = [_field(part, *spec) for part, spec in zip(parts, FIELDS, strict=True)]
        minutes, hours, dom, months, dow, years = values
        if (dom is None) == (dow is None):
            raise CronError(f"exactly one of day-of-month and day-of-week must be '?': {fields!r}")
        if minutes is None or hours is None or months is None or years is None:
            raise CronError(f"'?' is only allowed in day-of-month or day-of-week: {fields!r}")
        return cls(minutes, hours, dom, months, dow, years)

    def _matches(self, day: date) -> bool:
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return day.isoweekday() % 7 + 1 in self.days_of_week

    def occurrences(self, after: datetime, zone: tzinfo) -> Iterator[datetime]:
        """Every firing instant strictly after ``after``, ascending, as aware UTC datetimes."""
        day = after.astimezone(zone).date()
        clock_times = [time(hour, minute) for hour in sorted(self.hours) for minute in sorted(self.minutes)]
        while day.year <= max(self.years):
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
            elif day.month not in self.months:
                day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
            else:
                if self._matches(day):
                    for clock_time in clock_times:
                        local = datetime.combine(day, clock_time, zone)
                        instant = local.astimezone(UTC)
                        if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
                            continue  # skipped by a spring-forward transition
                        if instant > after:
                            yield instant
                day += timedelta(days=1)
