"""Properties of a long-running job's progress and checkpoint (asyncstack/runtime/long_running/progress.py and
checkpoint.py): the percent stays within 0..100, rounds half up, never goes back as work advances, reads 100
exactly when the job is done, and both survive being stored. Pure functions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asyncstack.runtime.long_running.checkpoint import Checkpoint
from asyncstack.runtime.long_running.progress import (
    DONE_PERCENT,
    NOT_DONE_CAP,
    Progress,
    eta_seconds,
    percent_done,
)

pytestmark = pytest.mark.unit

PURE = settings(max_examples=300, deadline=None)
NOW = datetime(2030, 1, 1, tzinfo=UTC)

# Row counts up to 10**15: Decimal's 28 digits make percent_done exact far beyond any table a job exports.
rows = st.integers(0, 10**15)
small_rows = st.integers(0, 10_000)


def half_up_percent(current: int, total: int) -> float:
    """100 * current / total rounded half up to one decimal, in integers only: the oracle."""
    tenths = (2000 * current + total) // (2 * total)  # floor(1000 * current / total + 1/2)
    return tenths / 10


@PURE
@given(current=rows, total=st.none() | rows, done=st.booleans())
@example(current=1, total=16, done=False)  # 6.25: half up gives 6.3, round() would give 6.2
@example(current=19_999, total=20_000, done=False)  # 99.995 would round to 100.0
def test_percent_is_the_half_up_ratio_within_0_and_100_and_100_only_when_done(
    current: int, total: int | None, done: bool
) -> None:
    # Given any rows done of any total (or none yet), the job done or not
    # When the percent is computed
    percent = percent_done(current, total, done=done)
    # Then it is 100 exactly when done; otherwise the ratio rounded half up, at most 99.9 (a total that was
    # overtaken counts as the current), and 0 without a total
    if done:
        assert percent == DONE_PERCENT
    elif total is None or max(total, current) == 0:
        assert percent == 0.0
    else:
        assert 0.0 <= percent <= NOT_DONE_CAP
        assert percent == min(half_up_percent(current, max(total, current)), NOT_DONE_CAP)


@PURE
@given(total=rows, currents=st.lists(rows, min_size=2, max_size=10).map(sorted))
def test_percent_never_goes_back_as_rows_are_done(total: int, currents: list[int]) -> None:
    # Given a fixed total and more and more rows done (possibly past the total)
    # When the percent is computed at each step
    percents = [percent_done(current, total) for current in currents]
    # Then it never decreases
    assert percents == sorted(percents)


@st.composite
def runs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """A job: its counted total, then (rows so far, processing ms so far) after each chunk, both growing;
    rows may pass the total (rows added while the job runs) or stay (an empty chunk)."""
    total = draw(small_rows)
    steps = draw(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 10_000)), max_size=12))
    current = elapsed = 0
    chunks = []
    for more_rows, more_ms in steps:
        current, elapsed = current + more_rows, elapsed + more_ms
        chunks.append((current, elapsed))
    return total, chunks


@PURE
@given(run=runs())
def test_a_job_s_progress_only_moves_forward_and_ends_at_100(run: tuple[int, list[tuple[int, int]]]) -> None:
    # Given a job whose total is counted first, then chunk after chunk is done
    total, chunks = run
    progress = Progress().with_total(total, now=NOW)
    seen = [progress]
    # When its progress is updated after each chunk, and once when it finishes
    for index, (current, processing_ms) in enumerate(chunks):
        progress = progress.after_chunk(
            current=current, processing_ms=processing_ms, now=NOW + timedelta(seconds=index)
        )
        seen.append(progress)
    final = progress.finished(current=progress.current, now=NOW + timedelta(hours=1))
    # Then the percent never goes back and stays under 100 until the end, which reads exactly 100
    percents = [p.percent for p in seen]
    assert percents == sorted(percents) and all(0 <= p <= NOT_DONE_CAP for p in percents)
    assert final.percent == DONE_PERCENT and final.total == final.current and final.eta_seconds == 0.0
    # And the total is never below the rows done, and never shrinks
    totals = [p.total for p in seen]
    assert all(t is not None and t >= p.current for t, p in zip(totals, seen, strict=True))
    assert totals == sorted(t for t in totals if t is not None)
    # And the estimate is absent before the first row, never negative, and 0 once the rows reach the total
    for p in seen:
        if p.current == 0:
            assert p.eta_seconds is None
        elif p is not seen[0]:
            assert p.eta_seconds is not None and p.eta_seconds >= 0
            if p.total is not None and p.current >= p.total:
                assert p.eta_seconds == 0


@PURE
@given(current=rows, total=st.none() | rows, processing_ms=st.floats(-1e6, 1e9, allow_nan=False))
def test_eta_is_none_without_a_rate_and_otherwise_not_negative(
    current: int, total: int | None, processing_ms: float
) -> None:
    # Given any rows done, total and time spent (a negative clock difference included)
    eta = eta_seconds(current, total, processing_ms)
    # Then there is no estimate without a total or a first row, and otherwise one of 0 s or more
    if total is None or current <= 0:
        assert eta is None
    else:
        assert eta is not None and eta >= 0


def _as_dynamodb(value: Any) -> Any:
    """What DynamoDB gives back for a stored number: a Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return Decimal(str(value))


@PURE
@given(run=runs(), finished=st.booleans())
def test_progress_survives_being_stored_and_read_back(
    run: tuple[int, list[tuple[int, int]]], finished: bool
) -> None:
    # Given any progress a job can reach
    total, chunks = run
    progress = Progress().with_total(total, now=NOW)
    for current, processing_ms in chunks:
        progress = progress.after_chunk(current=current, processing_ms=processing_ms, now=NOW)
    if finished:
        progress = progress.finished(current=progress.current, now=NOW)
    # When it is stored on the job item and read back (numbers come back as Decimal)
    stored = {key: _as_dynamodb(value) for key, value in progress.as_dict().items()}
    # Then it is the same progress
    assert Progress.from_dict(stored) == progress


json_keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@PURE
@given(next_chunk=st.integers(0, 10**6), last_key=json_keys, rows_done=rows)
@example(next_chunk=1, last_key={"pk": {"S": "order#1"}}, rows_done=100)  # a DynamoDB LastEvaluatedKey
@example(next_chunk=3, last_key="", rows_done=0)  # a falsy key is still a key
def test_a_checkpoint_survives_being_stored_and_says_when_the_job_is_finished(
    next_chunk: int, last_key: Any, rows_done: int
) -> None:
    # Given any checkpoint
    checkpoint = Checkpoint(next_chunk=next_chunk, last_key=last_key, rows=rows_done)
    # When it is stored and read back (numbers as Decimal)
    stored = {key: _as_dynamodb(value) for key, value in checkpoint.as_item().items()}
    # Then it is the same checkpoint, finished exactly when a chunk was done and no key is left
    assert Checkpoint.from_item(stored) == checkpoint
    assert checkpoint.finished == (next_chunk > 0 and last_key is None)
