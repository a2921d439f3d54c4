"""cfn-lint on the synthesized template: no error in any region; warnings are shown, not fatal."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
from cfnlint.api import lint_all
from cfnlint.match import Match

from tests.infra.conftest import SynthesizedApp
from tests.infra.template_model import Json, resources_of

pytestmark = pytest.mark.infra


def lint(template: Json) -> list[Match]:
    """Every rule of cfn-lint (errors, warnings, informational, experimental) in every region."""
    return lint_all(json.dumps(template))


def describe(matches: list[Match]) -> str:
    return "\n".join(f"{m.rule.id} {'/'.join(map(str, m.path or []))}: {m.message}" for m in matches)


def errors(matches: list[Match]) -> list[Match]:
    return [match for match in matches if match.rule.id.startswith("E")]


@pytest.fixture(scope="module")
def findings(synthesized: SynthesizedApp) -> list[Match]:
    return lint(synthesized.template)


def test_the_template_has_no_cfn_lint_error(findings: list[Match]) -> None:
    # Given cfn-lint's findings on the synthesized template, in every region
    # Then none is an error
    assert errors(findings) == [], describe(errors(findings))
    # And the warnings are shown in pytest's warnings summary, without failing
    others = [match for match in findings if match.rule.id.startswith("W")]
    if others:
        warnings.warn(f"cfn-lint on the synthesized template:\n{describe(others)}", UserWarning, stacklevel=1)


def test_cfn_lint_catches_an_invalid_template(synthesized: SynthesizedApp) -> None:
    # Given the synthesized template with one queue's visibility timeout beyond SQS's 12-hour maximum
    broken = copy.deepcopy(synthesized.template)
    queue = next(iter(resources_of(broken, "AWS::SQS::Queue").values()))
    queue["VisibilityTimeout"] = 43201
    # When it is linted
    found = errors(lint(broken))
    # Then cfn-lint reports an error on that property (the check above is not vacuous)
    assert any("VisibilityTimeout" in match.path for match in found), describe(found)
