"""FilterCriteria on SQS event source mappings, with the rules Lambda documents for SQS bodies."""

from __future__ import annotations

import json

import pytest

from localcloud.sqs.filters import passes, patterns

pytestmark = pytest.mark.unit


def criteria(*pattern: dict[str, object]) -> list[dict[str, object]]:
    return patterns({"Filters": [{"Pattern": json.dumps(p)} for p in pattern]})


def test_without_filters_every_body_passes() -> None:
    assert passes("anything", criteria())
    assert patterns(None) == [] and patterns({}) == []


def test_a_json_body_is_matched_against_an_object_pattern() -> None:
    # Given a filter on the body's RequestCode, as in Lambda's documentation
    only_bbbb = criteria({"body": {"RequestCode": ["BBBB"]}})
    # Then a body with that value passes, others and plain bodies do not
    assert passes(json.dumps({"RecordNumber": 1, "RequestCode": "BBBB"}), only_bbbb)
    assert not passes(json.dumps({"RecordNumber": 1, "RequestCode": "AAAA"}), only_bbbb)
    assert not passes("RequestCode BBBB", only_bbbb)


def test_filter_rules_prefix_numeric_exists_and_anything_but() -> None:
    rules = criteria(
        {"body": {"type": [{"prefix": "order."}], "total": [{"numeric": [">", 100]}]}},
        {"body": {"priority": [{"exists": True}], "region": [{"anything-but": ["eu-west-1"]}]}},
    )
    assert passes(json.dumps({"type": "order.created", "total": 150}), rules)
    assert not passes(json.dumps({"type": "order.created", "total": 50}), rules)
    # Any one filter matching is enough
    assert passes(json.dumps({"type": "signup", "priority": "high", "region": "us-east-1"}), rules)
    assert not passes(json.dumps({"type": "signup", "priority": "high", "region": "eu-west-1"}), rules)


def test_a_plain_body_is_matched_only_by_a_plain_string_pattern() -> None:
    plain = criteria({"body": ["ping", {"prefix": "health"}]})
    assert passes("ping", plain) and passes("healthcheck", plain)
    assert not passes("pong", plain)
    # A JSON body never matches a plain-string pattern
    assert not passes(json.dumps({"ping": True}), plain)
