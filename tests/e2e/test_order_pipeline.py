"""The synthesized stack on moto, driven end to end: the same run as ``make demo``, smaller."""

from __future__ import annotations

import pytest

from localcloud.demo import build_events, matches, run_demo

pytestmark = pytest.mark.e2e


def test_the_pipeline_reconciles_exactly() -> None:
    # Given the synthesized template provisioned on moto, with every function running from its asset
    lines: list[str] = []
    # When 120 messages (duplicates and poison included) are published through the orders topic
    ok = run_demo(events=120, timeout=180, say=lines.append)
    # Then every consumer's numbers add up: effects once per unique event, poison in the DLQ with reasons
    output = "\n".join(lines)
    assert ok, output
    assert "every number reconciles" in output
    assert output.count(" OK") == 3


def test_poison_events_cover_every_non_retryable_kind() -> None:
    published = build_events(100, duplicate_share=0.05, poison_share=0.03)
    assert len(published.all) == 100
    assert set(published.poison) == {"MalformedJson", "SchemaInvalid", "UnknownEventType"}
    assert {m.body for m in published.duplicates} <= {m.body for m in published.unique}


@pytest.mark.parametrize(
    ("policy", "attributes", "expected"),
    [
        ({"type": ["order.created"]}, {"type": "order.created"}, True),
        ({"type": ["order.created"]}, {"type": "order.teleported"}, False),
        ({"type": [{"prefix": "order."}]}, {"type": "order.teleported"}, True),
        ({"type": [{"prefix": "order."}]}, {}, False),
        (None, {}, True),
    ],
)
def test_the_reconciliation_routes_like_the_filter_policies(policy, attributes, expected) -> None:
    assert matches(policy, attributes) is expected
