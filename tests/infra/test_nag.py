"""cdk-nag's AwsSolutions pack (v3, a CDK policy-validation plugin) on the real app.

How v3 reports: ``Validations.of(app).add_plugins(AwsSolutionsChecks(app))`` runs the pack at
the end of ``app.synth()``. A finding that is not acknowledged makes ``app.synth()`` raise
(jsii surfaces it as ``RuntimeError: ValidationFailed``) after writing the template and
``validation-report.json`` (``pluginReports[].violations``) into the cloud assembly.
``Validations.of(construct).acknowledge(...)`` records ``aws:cdk:acknowledged-rules``
metadata on the construct, which the plugin honours.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from app import build_app
from tests.infra.conftest import STACK_NAME, SynthesizedApp
from tests.infra.template_model import Json

pytestmark = pytest.mark.infra

# An acknowledged id: a rule of the pack, maybe one finding of it, maybe with the plugin's or
# CDK's prefix ("AwsSolutions::" or the "Annotation::" CDK adds to an unprefixed id).
ACKNOWLEDGED_ID = re.compile(r"^((Annotation|AwsSolutions)::)?AwsSolutions-[A-Z]+[0-9]+(\[.+\])?$")


def violations(report: Json) -> list[tuple[str, str, list[str]]]:
    """(rule, severity, construct paths) of every unacknowledged finding in a validation report."""
    return [
        (
            violation["ruleName"],
            violation["severity"],
            [c["constructPath"] for c in violation["violatingConstructs"]],
        )
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
    ]


def test_the_real_app_has_no_unacknowledged_finding(synthesized: SynthesizedApp) -> None:
    # Given the real app, synthesized with the AwsSolutions pack that build_app registers
    report = synthesized.validation_report
    # Then synthesis was not interrupted by the validation
    assert synthesized.validation_error is None, violations(report)
    # And the report lists no finding of any severity, and no plugin concluded "failure"
    assert violations(report) == []
    assert [
        plugin["pluginName"] for plugin in report["pluginReports"] if plugin["conclusion"] != "success"
    ] == []


def test_the_check_fails_an_app_with_an_unencrypted_queue(tmp_path: Path) -> None:
    # Given a tiny app with an unencrypted queue that accepts plain HTTP, checked by the same pack
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Tiny")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # When it is synthesized
    with pytest.raises(RuntimeError, match=r"^ValidationFailed"):
        app.synth()
    # Then the report written to the assembly names the queue for SQS2 (no SSE) and SQS4 (no TLS)
    found = violations(json.loads((tmp_path / "validation-report.json").read_text()))
    by_rule = {rule: paths for rule, _severity, paths in found}
    assert by_rule["AwsSolutions-SQS2"] == ["Tiny/Plain/Resource"]
    assert by_rule["AwsSolutions-SQS4"] == ["Tiny/Plain/Resource"]
    assert {severity for _rule, severity, _paths in found} == {"error"}


def test_build_app_really_runs_the_pack(tmp_path: Path) -> None:
    # Given the real app with one unencrypted queue added to its stack
    app = build_app(outdir=str(tmp_path))
    stack = app.node.find_child(STACK_NAME)
    assert isinstance(stack, Stack)
    sqs.Queue(stack, "Unencrypted", encryption=sqs.QueueEncryption.UNENCRYPTED, enforce_ssl=True)
    # When it is synthesized
    with pytest.raises(RuntimeError, match=r"^ValidationFailed"):
        app.synth()
    # Then the pack wired by build_app reports that queue, and nothing else of the stack
    found = violations(json.loads((tmp_path / "validation-report.json").read_text()))
    assert ("AwsSolutions-SQS2", "error", [f"{STACK_NAME}/Unencrypted/Resource"]) in found
    assert {path for _rule, _severity, paths in found for path in paths} == {
        f"{STACK_NAME}/Unencrypted/Resource"
    }


def test_every_acknowledgment_names_a_rule_and_gives_a_reason(synthesized: SynthesizedApp) -> None:
    # Given the acknowledgments recorded in the real app's cloud assembly
    acknowledged = [
        (path, rule, reason)
        for path, entries in synthesized.stack_metadata().items()
        for entry in entries
        if entry["type"] == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule, reason in entry["data"].items()
    ]
    assert acknowledged, "the app acknowledges nothing: the X-Ray and subscription-DLQ findings would fail it"
    for path, rule, reason in acknowledged:
        # Then each names an AwsSolutions rule (a typo would acknowledge nothing)
        assert ACKNOWLEDGED_ID.match(rule), f"{path}: {rule!r} is not an AwsSolutions rule id"
        # And says why, in words, not just the rule id again
        assert isinstance(reason, str) and len(reason.strip()) >= 20, (
            f"{path}: {rule} has no real reason: {reason!r}"
        )
        assert rule.split("::")[-1] not in reason, f"{path}: the reason for {rule} only repeats the id"


def test_acknowledgments_sit_on_the_constructs_they_excuse(synthesized: SynthesizedApp) -> None:
    # Given the construct tree of the real app
    acknowledged = {
        node.node.path: entry.data
        for node in synthesized.app.node.find_all()
        for entry in node.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    }
    # Then only the functions' and workflows' roles (X-Ray and log delivery need Resource "*"; the
    # signup worker creates schedules named at run time; workers write objects named at run time;
    # Lambda tasks may invoke a function's versions), the topics' subscription DLQs, the schedules'
    # DLQ (the SQS3 rule cannot see a subscription RedrivePolicy or a schedule's DeadLetterConfig),
    # the RPC reply queue, the access-log bucket, the webhook secret (rotated with a grace period) and
    # DLQs, and the REST API (body validation in the function, no WAF) are excused, nothing stack-wide
    assert STACK_NAME not in acknowledged
    assert set(acknowledged) == {
        f"{STACK_NAME}/InventoryWorker/Role",
        f"{STACK_NAME}/EmailWorker/Role",
        f"{STACK_NAME}/AnalyticsWorker/Role",
        f"{STACK_NAME}/JobsWorker/Role",
        f"{STACK_NAME}/SignupWorker/Role",
        f"{STACK_NAME}/OrderPayments/Role",
        f"{STACK_NAME}/OrderInventory/Role",
        f"{STACK_NAME}/OrderNotifications/Role",
        f"{STACK_NAME}/ExportWorker/Role",
        f"{STACK_NAME}/ImageResize/Role",
        f"{STACK_NAME}/OrderSaga/Workflow/StateMachine/Role",
        f"{STACK_NAME}/Exports/Workflow/StateMachine/Role",
        f"{STACK_NAME}/ImageResizeRpc/Workflow/StateMachine/Role",
        f"{STACK_NAME}/ImageResizeRpc/DefaultReplies",
        f"{STACK_NAME}/AccessLogs",
        f"{STACK_NAME}/WebhookDelivery/Role",
        f"{STACK_NAME}/Webhooks/SigningSecret",
        f"{STACK_NAME}/Webhooks/DeadLetterQueue",
        f"{STACK_NAME}/Webhooks/Jobs/TargetDeadLetterQueue",
        f"{STACK_NAME}/JobApi/Api",
        f"{STACK_NAME}/JobApi/Api/CloudWatchRole",
        f"{STACK_NAME}/ApiHandler/Role",
        f"{STACK_NAME}/OrdersTopic/UndeliverableQueue",
        f"{STACK_NAME}/UsersTopic/UndeliverableQueue",
        f"{STACK_NAME}/Jobs/TargetDeadLetterQueue",
    }
