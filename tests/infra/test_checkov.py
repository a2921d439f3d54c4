"""checkov (a CloudFormation security scanner) on every template the repo synthesizes: no failed check.

The templates are the example stack (``app.build_app``, shared with the other infra tests) and the
``examples/minimal`` app, synthesized as its CDK CLI runs it: ``python app.py`` in its folder.

A finding is either fixed or skipped on the resource itself, in the template metadata checkov reads
(``Metadata.checkov.skip: [{id, comment}]``), by the asyncstack construct that creates the resource
(``asyncstack.cdk.nag.skip_checkov``), with a reason. Only the checks in ``NOT_APPLICABLE`` are skipped
here, by id, for every template; the premise each skip rests on is checked on the templates below.

checkov runs offline from its own virtual environment (its pins conflict with ours): ``make test``
installs it at ``.tools/checkov``; the environment variable ``CHECKOV`` names another executable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from asyncstack.cdk.nag import skip_checkov
from tests.infra.conftest import STACK_NAME, SynthesizedApp
from tests.infra.template_model import Json, referenced_ids

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_APP = ROOT / "examples" / "minimal"
MINIMAL_STACK = "MinimalApp"
DEFAULT_CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"

# Checks that do not apply to this design at all: skipped by id on every template, for the reason given.
NOT_APPLICABLE = {
    "CKV_AWS_117": "Lambda functions outside a VPC: the stacks have no private resources (no VPC, database, "
    "cache or file system, see test_no_resource_lives_in_a_vpc); every dependency is an AWS public endpoint "
    "(SQS, SNS, DynamoDB, S3, Step Functions, Scheduler, Secrets Manager, X-Ray) reached over TLS with "
    "IAM-signed requests. A VPC would add NAT gateways or interface endpoints to pay for, and isolate nothing.",
}

CHECK_ID = re.compile(r"^CKV2?_AWS_[0-9]+$")
MIN_REASON_WORDS = 6

# Resource types that invoke a Lambda function asynchronously when one of their properties names it.
ASYNC_INVOKERS = {
    "AWS::SNS::Subscription",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::Pipes::Pipe",
    "AWS::S3::Bucket",  # NotificationConfiguration.LambdaConfigurations
    "AWS::Logs::SubscriptionFilter",
    "AWS::CloudWatch::Alarm",
    "AWS::IoT::TopicRule",
    "AWS::SES::ReceiptRule",
    "AWS::CodeCommit::Repository",
    "AWS::Config::ConfigRule",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Url",
}
# The services whose Lambda permissions this design allows: each invokes synchronously.
SYNCHRONOUS_PRINCIPALS = {"apigateway.amazonaws.com"}
# Services whose resources live in a VPC: a function that uses one would need to be in it.
VPC_SERVICES = (
    "AWS::EC2::", "AWS::RDS::", "AWS::ElastiCache::", "AWS::MemoryDB::", "AWS::EFS::", "AWS::FSx::",
    "AWS::DocDB::", "AWS::Neptune::", "AWS::Redshift::", "AWS::MSK::", "AWS::OpenSearchService::",
    "AWS::Elasticsearch::", "AWS::DAX::", "AWS::AmazonMQ::",
)  # fmt: skip
SECRET_LIKE_NAME = re.compile(r"SECRET|PASSWORD|PASSPHRASE|TOKEN|CREDENTIAL|PRIVATE|API_?KEY")


# --- running checkov ------------------------------------------------------------------------------


def checkov_executable() -> Path:
    checkov = Path(os.environ.get("CHECKOV") or DEFAULT_CHECKOV)
    if not checkov.is_file():
        pytest.fail(
            f"checkov is not installed at {checkov}: `make test` installs it (in its own virtual environment, "
            ".tools/checkov), or set CHECKOV to a checkov executable"
        )
    return checkov


def run_checkov(template: Path) -> Json:
    """checkov's JSON report on one CloudFormation template, offline, with the not-applicable checks skipped."""
    command = [
        str(checkov_executable()), "-f", str(template), "--framework", "cloudformation", "--skip-download",
        "--compact", "-o", "json", "--skip-check", ",".join(NOT_APPLICABLE),
    ]  # fmt: skip
    # Offline: no Bridgecrew id mapping download, no package scan.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov exited with {done.returncode} without a JSON report:\n{done.stdout}\n{done.stderr}"
        )
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["cloudformation"], done.stderr
    result: Json = reports[0]
    return result


def synthesize_minimal_app(outdir: Path) -> Path:
    """``examples/minimal`` synthesized as the CDK CLI runs it (``python app.py`` in its folder), into ``outdir``."""
    env = {**os.environ, "CDK_OUTDIR": str(outdir), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=MINIMAL_APP, env=env, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    template = outdir / f"{MINIMAL_STACK}.template.json"
    if done.returncode != 0 or not template.is_file():
        pytest.fail(
            f"examples/minimal does not synthesize ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return template


@dataclass(frozen=True)
class SynthesizedStack:
    """One stack's template in a cloud assembly, and where each of its resources comes from."""

    outdir: Path
    stack: str

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack}.template.json"

    @cached_property
    def template(self) -> Json:
        template: Json = json.loads(self.template_file.read_text())
        return template

    @cached_property
    def construct_paths(self) -> dict[str, str]:
        """Logical id -> construct path, from the assembly's manifest (the templates carry no paths)."""
        artifact = json.loads((self.outdir / "manifest.json").read_text())["artifacts"][self.stack]
        metadata = dict(artifact.get("metadata", {}))
        if "additionalMetadataFile" in artifact:
            metadata |= json.loads((self.outdir / artifact["additionalMetadataFile"]).read_text())
        return {
            entry["data"]: path.lstrip("/")
            for path, entries in metadata.items()
            for entry in entries
            if entry["type"] == "aws:cdk:logicalId"
        }

    def where(self, resource: str) -> str:
        """The construct path of a logical id, or of checkov's ``Type.LogicalId`` resource name."""
        logical_id = resource.rsplit(".", 1)[-1]
        return self.construct_paths.get(logical_id, logical_id)


@pytest.fixture(scope="session")
def stacks(
    synthesized: SynthesizedApp, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, SynthesizedStack]:
    """Every stack the repo synthesizes, by the app that makes it."""
    minimal = tmp_path_factory.mktemp("minimal.cdk.out")
    synthesize_minimal_app(minimal)
    return {
        "example stack": SynthesizedStack(synthesized.outdir, STACK_NAME),
        "examples/minimal": SynthesizedStack(minimal, MINIMAL_STACK),
    }


@pytest.fixture(scope="session")
def reports(stacks: dict[str, SynthesizedStack]) -> dict[str, Json]:
    return {app: run_checkov(stack.template_file) for app, stack in stacks.items()}


@pytest.fixture(scope="session")
def template_jsons(stacks: dict[str, SynthesizedStack]) -> dict[str, Json]:
    return {app: stack.template for app, stack in stacks.items()}


def template_skips(template: Json) -> Iterator[tuple[str, str, Any]]:
    """(logical id, check id, comment) of every checkov skip recorded in the template's metadata."""
    for logical_id, resource in template["Resources"].items():
        checkov = resource.get("Metadata", {}).get("checkov", {})
        for skip in checkov.get("skip", []):
            yield logical_id, skip.get("id"), skip.get("comment")


# --- the checks -----------------------------------------------------------------------------------


def test_checkov_fails_no_check_on_any_template(
    reports: dict[str, Json], stacks: dict[str, SynthesizedStack]
) -> None:
    # Given checkov's report on every template the repo synthesizes
    failed = [
        f"{app}: {check['check_id']} {check['resource']} ({stacks[app].where(check['resource'])})"
        f": {check['check_name']}"
        for app, report in reports.items()
        for check in report["results"]["failed_checks"]
    ]
    # Then no check failed: each finding is fixed, or skipped on its resource with a reason
    assert failed == [], "\n".join(["checkov failed checks:", *failed])
    # And checkov read every template whole, and looked at something
    for app, report in reports.items():
        assert report["summary"]["parsing_errors"] == 0, app
        assert report["summary"]["passed"] > 0, app


def test_every_skip_in_a_template_names_a_check_and_gives_a_reason(
    stacks: dict[str, SynthesizedStack],
) -> None:
    for app, stack in stacks.items():
        template = stack.template
        # Given the checkov skips recorded in the template's resource metadata
        skips = list(template_skips(template))
        assert skips, f"{app}: no skip at all: the SQS, log and Lambda findings would fail it"
        for logical_id, check_id, comment in skips:
            where = f"{app}: {stack.where(logical_id)}"
            # Then each names one checkov check (no wildcard, no typo)
            assert isinstance(check_id, str) and CHECK_ID.match(check_id), (
                f"{where}: {check_id!r} is no check id"
            )
            # And says why in words, not just the check's id again
            assert isinstance(comment, str) and len(comment.split()) >= MIN_REASON_WORDS, (
                f"{where}: {check_id} has no real reason: {comment!r}"
            )
            assert check_id not in comment, f"{where}: the reason for {check_id} only repeats the id"
        # And no resource skips the same check twice (a second reason is merged into the first)
        pairs = [(logical_id, check_id) for logical_id, check_id, _ in skips]
        assert len(pairs) == len(set(pairs)), app


def test_checkov_honours_every_skip_in_the_templates(
    reports: dict[str, Json], template_jsons: dict[str, Json]
) -> None:
    for app, template in template_jsons.items():
        # Given the skips in the template and those checkov reports as skipped
        recorded = {(logical_id, check_id) for logical_id, check_id, _ in template_skips(template)}
        honoured = {
            (check["resource"].rsplit(".", 1)[-1], check["check_id"])
            for check in reports[app]["results"].get("skipped_checks", [])
        }
        # Then checkov applied each one: none names a check that does not run on its resource's type
        assert recorded - honoured == set(), app


def test_the_checks_skipped_by_id_give_their_reasons() -> None:
    # Given the checks skipped for every template, by id
    for check_id, reason in NOT_APPLICABLE.items():
        # Then each is a checkov check, and the reason says why it does not apply to the design
        assert CHECK_ID.match(check_id), check_id
        assert len(reason.split()) >= MIN_REASON_WORDS and check_id not in reason, check_id


# --- the premises of the skips --------------------------------------------------------------------


def function_ids(template: Json) -> set[str]:
    """Logical ids of the functions, and of their aliases and versions (which invoke the same code)."""
    kinds = {"AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Version"}
    return {logical_id for logical_id, r in template["Resources"].items() if r["Type"] in kinds}


def test_no_function_is_invoked_asynchronously(template_jsons: dict[str, Json]) -> None:
    """The premise of the function-DLQ skips (CKV_AWS_116): a function DLQ only receives failed asynchronous
    invocations, and the functions are invoked by SQS event source mappings, Step Functions tasks
    (RequestResponse) and API Gateway's proxy integration, all synchronous."""
    for app, template in template_jsons.items():
        functions = function_ids(template)
        resources = template["Resources"]
        # Given every resource of a type that can invoke a function asynchronously
        for logical_id, resource in resources.items():
            if resource["Type"] in ASYNC_INVOKERS:
                # Then none names a function (SNS lambda subscription, rule or schedule target, S3 notification...)
                named = referenced_ids(resource.get("Properties", {})) & functions
                assert named == set(), (
                    f"{app}: {logical_id} ({resource['Type']}) invokes {named} asynchronously"
                )
        # And only services that invoke synchronously may invoke a function
        principals = {
            str(resource["Properties"]["Principal"])
            for resource in resources.values()
            if resource["Type"] == "AWS::Lambda::Permission"
        }
        assert principals <= SYNCHRONOUS_PRINCIPALS, f"{app}: {principals - SYNCHRONOUS_PRINCIPALS}"
        # And no workflow's Lambda task asks for an asynchronous invocation
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::StepFunctions::StateMachine":
                definition = json.dumps(resource["Properties"].get("DefinitionString", ""))
                assert not re.search(r'InvocationType[\\"]*:[\\"]*Event', definition), f"{app}: {logical_id}"


def test_no_resource_lives_in_a_vpc(template_jsons: dict[str, Json]) -> None:
    """The premise of skipping CKV_AWS_117 (Lambda in a VPC): there is nothing private to reach."""
    for app, template in template_jsons.items():
        # Given every resource of the template
        types = {resource["Type"] for resource in template["Resources"].values()}
        # Then none belongs to a service that lives in a VPC, and no function is placed in one
        assert {t for t in types if t.startswith(VPC_SERVICES)} == set(), app
        assert [
            logical_id
            for logical_id, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Lambda::Function" and "VpcConfig" in resource["Properties"]
        ] == [], app


def test_no_function_environment_holds_a_secret(stacks: dict[str, SynthesizedStack]) -> None:
    """The premise of the Lambda environment skips (CKV_AWS_173): the variables hold names, ARNs, URLs and
    settings; a secret is read at run time from Secrets Manager, and the environment only names it."""
    for app, stack in stacks.items():
        resources = stack.template["Resources"]
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            # Given each variable whose name suggests a secret
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            for name, value in variables.items():
                if not SECRET_LIKE_NAME.search(name):
                    continue
                # Then it is the ARN of a Secrets Manager secret of the stack, never a literal value
                where = f"{app}: {stack.where(logical_id)} {name}"
                assert name.endswith("_ARN"), f"{where} looks like a secret value"
                named = {resources.get(i, {}).get("Type") for i in referenced_ids(value)}
                secrets = named & {"AWS::SecretsManager::Secret"}
                assert secrets, f"{where} names no Secrets Manager secret of the stack"


# --- the helper that records skips ----------------------------------------------------------------


def test_skip_checkov_merges_skips_into_the_resource_metadata() -> None:
    # Given a queue whose resource already has other metadata and one skip
    stack = Stack(App(), "Tiny")
    queue = sqs.Queue(stack, "Queue")
    cfn = queue.node.default_child
    assert isinstance(cfn, sqs.CfnQueue)
    cfn.add_metadata("other", {"kept": True})
    skip_checkov(queue, "CKV_AWS_27", "first reason, in several words of its own")
    # When another check is skipped, and the first one again for another reason (and the same reason twice)
    skip_checkov(cfn, "CKV_AWS_999", "another check skipped for another good reason")
    skip_checkov(queue, "CKV_AWS_27", "second reason, from a second construct using it")
    skip_checkov(queue, "CKV_AWS_27", "second reason, from a second construct using it")
    # Then the resource holds one skip per check, the reasons merged, and its other metadata kept
    assert cfn.get_metadata("checkov") == {
        "skip": [
            {
                "id": "CKV_AWS_27",
                "comment": "first reason, in several words of its own second reason, from a second construct using it",
            },
            {"id": "CKV_AWS_999", "comment": "another check skipped for another good reason"},
        ]
    }
    assert cfn.get_metadata("other") == {"kept": True}
    # And a skip without a reason is refused
    with pytest.raises(ValueError, match="must say why"):
        skip_checkov(queue, "CKV_AWS_18", "not needed")
