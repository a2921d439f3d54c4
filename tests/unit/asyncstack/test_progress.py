"""Unit tests for the progress arithmetic (asyncstack/runtime/long_running/progress.py): pure functions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from asyncstack.runtime.long_running.progress import NOT_DONE_CAP, Progress, eta_seconds, percent_done

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        (0, 10, 0.0),
        (1, 3, 33.3),
        (2, 3, 66.7),  # 66.666... rounds up
        (1, 8, 12.5),
        (1, 16, 6.3),  # 6.25: half up, not to even (float round() would give 6.2)
        (1, 1000, 0.1),
        (1, 2001, 0.0),  # 0.0499...
        (1, 1999, 0.1),  # 0.0500...
        (5, 10, 50.0),
    ],
)
def test_percent_has_one_decimal_rounded_half_up(current: int, total: int, expected: float) -> None:
    # Given current of total items done
    # When the percent is computed
    # Then it is rounded half up to one decimal
    assert percent_done(current, total) == expected


@pytest.mark.parametrize(("current", "total"), [(10, 10), (1999, 2000), (99_999, 100_000), (12, 10)])
def test_percent_is_capped_below_100_until_done(current: int, total: int) -> None:
    # Given all (or almost all, or more than) the counted items done, but the job not finished
    # When the percent is computed
    # Then it shows at most 99.9: 100 means done, and only done
    assert percent_done(current, total) <= NOT_DONE_CAP
    assert percent_done(current, total, done=True) == 100.0


def test_percent_without_a_total_or_of_an_empty_total_is_zero() -> None:
    # Given no total yet, or a total of zero with nothing done
    # Then the percent is 0 (no division by zero), and 100 once done
    assert percent_done(0, None) == 0.0
    assert percent_done(5, None) == 0.0
    assert percent_done(0, 0) == 0.0
    assert percent_done(0, 0, done=True) == 100.0


def test_eta_extrapolates_the_processing_rate() -> None:
    # Given 25 of 100 items done in 5 s of processing (200 ms an item)
    # When the ETA is computed
    # Then the 75 left take 15 s at that rate
    assert eta_seconds(25, 100, 5_000) == 15.0
    # And it has one decimal
    assert eta_seconds(3, 10, 1_000) == 2.3  # 7 * 333.3 ms


def test_eta_is_none_before_the_first_chunk_and_without_a_total() -> None:
    # Given nothing done yet, or no total
    # Then there is no rate or nothing to extrapolate to: no estimate
    assert eta_seconds(0, 100, 0) is None
    assert eta_seconds(0, 100, 1_234) is None
    assert eta_seconds(10, None, 1_000) is None


def test_eta_is_zero_when_current_reaches_or_passes_the_total() -> None:
    assert eta_seconds(100, 100, 9_000) == 0.0
    assert eta_seconds(120, 100, 9_000) == 0.0


def test_a_fresh_progress_has_no_total_and_no_eta() -> None:
    progress = Progress()
    assert progress.as_dict() == {
        "current": 0,
        "total": None,
        "percent": 0.0,
        "eta_seconds": None,
        "updated_at": None,
    }


def test_with_total_sets_the_total_and_keeps_eta_unknown() -> None:
    # Given a job whose table has just been counted
    progress = Progress().with_total(40, now=NOW)
    # Then the total is known, nothing is done, and there is still no rate for an ETA
    assert progress == Progress(
        current=0, total=40, percent=0.0, eta_seconds=None, updated_at="2030-01-01T12:00:00Z"
    )


def test_after_chunk_uses_processing_time_not_wall_clock() -> None:
    # Given a job of 100 items, 10 done after 2 s of processing in the first run
    first = Progress().with_total(100, now=NOW).after_chunk(current=10, processing_ms=2_000, now=NOW)
    assert (first.percent, first.eta_seconds) == (10.0, 18.0)
    # When the run crashed, an hour passed, and a retry did 10 more in 2 s (4 s processing in all)
    later = NOW + timedelta(hours=1)
    second = first.after_chunk(current=20, processing_ms=4_000, now=later)
    # Then the ETA reflects 200 ms an item, not the hour's pause
    assert second == Progress(
        current=20, total=100, percent=20.0, eta_seconds=16.0, updated_at="2030-01-01T13:00:00Z"
    )


def test_after_chunk_takes_absolute_counts_so_a_redo_does_not_double_count() -> None:
    # Given 10 done, and the same chunk redone after a crash (the checkpoint still says 10 before it)
    progress = Progress(total=30).after_chunk(current=20, processing_ms=1_000, now=NOW)
    redone = progress.after_chunk(current=20, processing_ms=1_500, now=NOW)
    # Then current is still 20
    assert redone.current == 20
    assert redone.percent == 66.7


def test_current_beyond_the_total_raises_the_total() -> None:
    # Given 10 items counted, but rows were added during the export and 12 are done
    progress = Progress(total=10).after_chunk(current=12, processing_ms=1_200, now=NOW)
    # Then the total follows current, and percent stays below 100 until done
    assert progress.total == 12
    assert progress.percent == NOT_DONE_CAP
    assert progress.eta_seconds == 0.0


def test_finished_is_exactly_100_with_the_exported_count_as_total() -> None:
    # Given a job that counted 10 but found 8 (rows deleted meanwhile)
    progress = Progress(current=8, total=10, percent=80.0).finished(current=8, now=NOW)
    # Then it reads 100 %, with the real total and nothing left
    assert progress == Progress(
        current=8, total=8, percent=100.0, eta_seconds=0.0, updated_at="2030-01-01T12:00:00Z"
    )


def test_percent_never_reaches_100_through_after_chunk() -> None:
    # Given every chunk of a 1,000-item job, 7 items at a time
    progress = Progress(total=1_000)
    seen = []
    for current in range(7, 1_008, 7):
        progress = progress.after_chunk(current=min(current, 1_000), processing_ms=current, now=NOW)
        seen.append(progress.percent)
    # Then percent only grows, and never shows 100 before the job is finished
    assert seen == sorted(seen)
    assert max(seen) == NOT_DONE_CAP


def test_round_trip_through_a_stored_dict() -> None:
    # Given progress as DynamoDB gives it back (Decimals, integral floats as ints)
    from decimal import Decimal

    stored = {
        "current": Decimal(20),
        "total": Decimal(100),
        "percent": Decimal(20),
        "eta_seconds": Decimal("16.0"),
        "updated_at": "2030-01-01T12:00:00Z",
    }
    progress = Progress.from_dict(stored)
    # Then it reads back as plain ints and floats
    assert progress.as_dict() == {
        "current": 20,
        "total": 100,
        "percent": 20.0,
        "eta_seconds": 16.0,
        "updated_at": "2030-01-01T12:00:00Z",
    }
    assert isinstance(progress.as_dict()["percent"], float)
    assert Progress.from_dict(None) == Progress()


def test_timestamps_are_utc() -> None:
    paris = timezone(timedelta(hours=1))
    progress = Progress(total=2).after_chunk(
        current=1, processing_ms=1, now=datetime(2030, 1, 1, 13, tzinfo=paris)
    )
    assert progress.updated_at == "2030-01-01T12:00:00Z"
