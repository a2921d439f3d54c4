"""The quick chaos run: 500 order events and every other stateful pattern at a small size, with every fault
injected, and the invariants hold."""

from __future__ import annotations

import pytest

from demo.chaos import ChaosConfig, run_chaos
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900 + 600)  # the run's own 900 s limit, plus the deploy and the invariants
def test_nothing_is_lost_and_nothing_is_applied_twice_under_faults(cloud: LocalCloud) -> None:
    # Given the deployed stack with faults injected: 10% of events failing transiently, 1% poison, 5%
    # duplicates, 3% of DynamoDB requests throttled, 2 crashes mid-batch, 1 timeout; and in the other
    # patterns' workers transient write failures, crashes and timeouts of their own
    lines: list[str] = []
    # When 500 events go through the pipeline, with signups, sagas, RPC calls and exports with webhooks
    report = run_chaos(ChaosConfig(events=500), cloud=cloud, timeout=900, say=lines.append)
    # Then every invariant holds
    output = "\n".join(lines)
    assert report.ok, output
    # And every fault was really injected, in the pipeline and in each pattern
    faults = report.faults
    assert faults["write requests failed transiently"] > 0, output
    assert faults["requests throttled"] > 0, output
    assert faults["crashes (environments killed mid-batch)"] == 2, output
    assert faults["invocations timed out"] == 1, output
    assert faults["duplicates published"] == 25 and faults["poison published"] == 5, output
    for target in ("jobs worker: follow-up email", "export worker: checkpoint", "webhook worker: attempt record",
                   "saga: charge", "saga: reserve", "saga: refund", "saga: release", "request-reply: thumbnail"):  # fmt: skip
        assert faults.get(f"{target}: failed transiently", 0) > 0, (target, output)
    for target in ("jobs worker: follow-up email", "export worker: checkpoint", "saga: reserve"):
        assert faults.get(f"{target}: crashes", 0) > 0, (target, output)
    assert faults.get("saga: reserve: timeouts", 0) == 1, output
    names = {i.name for i in report.invariants}
    assert {name.split(": ", 1)[1] for name in names if name.split(": ")[0] in ("inventory", "email", "analytics")} == {
        "no event lost", "no effect applied twice", "every transient event processed",
        "every poison event in the DLQ once, with its reason", "stock moved once per unique order",
    }  # fmt: skip
    assert {
        "delayed jobs: every due job ran once, no cancelled job ran",
        "webhooks: delivered once, or in the DLQ with every attempt",
        "exports: every report has every row once",
        "order saga: every saga completed or fully compensated",
        "request-reply: every call answered with its own result or timed out",
    } <= names
