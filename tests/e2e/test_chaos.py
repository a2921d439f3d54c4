"""The quick chaos run: 500 order events with every fault injected, and the invariants hold."""

from __future__ import annotations

import pytest

from localcloud.chaos import ChaosConfig, run_chaos
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e


def test_nothing_is_lost_and_nothing_is_applied_twice_under_faults(cloud: LocalCloud) -> None:
    # Given the deployed pipeline with faults injected: 10% of events failing transiently, 1%
    # poison, 5% duplicates, 3% of DynamoDB requests throttled, 2 crashes mid-batch, 1 timeout
    lines: list[str] = []
    # When 500 events go through it
    report = run_chaos(ChaosConfig(events=500), cloud=cloud, timeout=600, say=lines.append)
    # Then every invariant holds
    output = "\n".join(lines)
    assert report.ok, output
    # And every fault was really injected
    faults = report.faults
    assert faults["write requests failed transiently"] > 0, output
    assert faults["requests throttled"] > 0, output
    assert faults["crashes (environments killed mid-batch)"] == 2, output
    assert faults["invocations timed out"] == 1, output
    assert faults["duplicates published"] == 25 and faults["poison published"] == 5, output
    names = {i.name.split(": ", 1)[1] for i in report.invariants}
    assert names == {
        "no event lost", "no effect applied twice", "every transient event processed",
        "every poison event in the DLQ once, with its reason", "stock moved once per unique order",
    }  # fmt: skip
