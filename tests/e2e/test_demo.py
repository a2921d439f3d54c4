"""Every pattern's scenario, as ``make demo`` runs it, on the shared local cloud: one source of truth for
the demo and for these tests. Each scenario checks its own outcomes; these tests assert its verdict and
the counts that follow from what it sent in."""

from __future__ import annotations

import pytest

from demo.runner import run_demo
from demo.scenarios import SCENARIOS
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

# What ends in a dead-letter queue on purpose: the pub-sub poison (2 % of 200, one message per kind at
# least) and the work queue's one poison message. Everything else sent in must complete.
EXPECTED_IN_DLQ = {"pub-sub": 4, "work-queue": 1}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_scenario_behaves(cloud: LocalCloud, name: str) -> None:
    # Given the deployed stack / When the pattern's scenario runs
    lines: list[str] = []
    result = SCENARIOS[name].run(cloud, lines.append)
    # Then it found what it expected, and every event it sent in completed or sits in a DLQ on purpose
    assert result.ok, f"{result.detail}\n" + "\n".join(lines)
    assert result.pattern == name
    assert result.in_dlq == EXPECTED_IN_DLQ.get(name, 0)
    assert result.processed == result.events - result.in_dlq > 0
    # And its latencies were measured, sent to effect observed
    assert result.latencies and min(result.latencies) >= 0 and result.p50 is not None


def test_the_export_prints_a_line_per_progress_change_when_not_on_a_terminal(cloud: LocalCloud) -> None:
    lines: list[str] = []
    result = SCENARIOS["long-running-export"].run(cloud, lines.append)
    bars = [line for line in lines if line.lstrip().startswith("[")]
    assert result.ok, result.detail
    assert len(bars) >= 3 and len(set(bars)) == len(bars)
    assert "100.0 %" in bars[-1] and "100.0 %" not in bars[0]


def test_the_demo_prints_a_summary_table_and_a_verdict(cloud: LocalCloud) -> None:
    lines: list[str] = []
    ok = run_demo(patterns=["request-reply", "saga"], say=lines.append, cloud=cloud)
    assert ok, "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("pattern "))
    assert lines[header].split() == [
        "pattern",
        "events",
        "processed",
        "in",
        "DLQ",
        "p50",
        "latency",
        "outcome",
    ]
    rows = [line.split() for line in lines[header + 2 : header + 4]]
    assert [(row[0], row[1], row[2], row[3], row[-1]) for row in rows] == [
        ("request-reply", "5", "5", "0", "OK"),
        ("saga", "2", "2", "0", "OK"),
    ]
    assert lines[-1].startswith("every pattern behaved: 2 of 2 OK")
