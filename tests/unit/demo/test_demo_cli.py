"""The demo's command line (``python -m demo``): what it refuses before starting anything."""

from __future__ import annotations

import pytest

from demo.__main__ import main, parser

pytestmark = pytest.mark.unit


def test_demo_with_an_unknown_pattern_lists_the_valid_ones_and_starts_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a pattern name the demo does not have
    # When the demo is asked for it (next to a valid one)
    code = main(["run", "--pattern", "saga", "--pattern", "carrier-pigeon"])
    # Then one line names it and every valid pattern, and nothing was started (no deploy output)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: unknown pattern 'carrier-pigeon': valid patterns are fire-and-forget, request-reply, pub-sub, "
        "work-queue, delayed-jobs, batch-ingestion, long-running-export, polling-webhook, saga"
    ]


def test_a_chaos_run_too_small_for_its_shares_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # When a chaos run of 50 events is asked for (1% poison would round to nothing)
    code = main(["chaos", "--events", "50"])
    # Then one line says why and what to run instead, and nothing was started
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: --events must be at least 100 (faults are shares of the events): try --events 500"
    ]


def test_run_keeps_its_options() -> None:
    # Given `run` with every option of today's demo, including --keep
    args = parser().parse_args(
        ["run", "--keep", "--events", "50", "--pattern", "saga", "--dashboard-port", "3005"]
    )
    # Then each is kept
    assert (args.keep, args.events, args.patterns, args.dashboard_port) == (True, 50, ["saga"], 3005)
