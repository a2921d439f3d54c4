"""Explaining security-scanner findings precisely: one finding, on one resource, with its reason.

cdk-nag: acknowledgments are recorded on the construct (``Validations.of(...).acknowledge``). cdk-nag
names a wildcard resource as synthesized, e.g. ``<LogicalId.Arn>/exports/*``; these helpers build that
name from the construct, so an acknowledgment never covers more than meant.

checkov: a skip is read from the resource's own template metadata,
``Metadata: {"checkov": {"skip": [{"id": ..., "comment": ...}]}}``; ``skip_checkov`` merges one into it,
so the template itself says why a check does not apply to that resource.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

CHECKOV_METADATA_KEY = "checkov"


def cfn_resource_of(resource: IConstruct) -> CfnResource:
    """The CloudFormation resource of an L1 or of an L2's default child."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} has no CloudFormation resource"
    return cfn


def arn_of(resource: IConstruct) -> str:
    """How cdk-nag prints ``Fn::GetAtt [resource, Arn]`` of an L2's default child (or an L1)."""
    cfn = cfn_resource_of(resource)
    return f"<{Stack.of(cfn).get_logical_id(cfn)}.Arn>"


def acknowledge_wildcard(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the IAM5 finding ``finding`` (``Resource::...`` or ``Action::...``) on ``scope``."""
    Validations.of(scope).acknowledge(
        Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason=reason)
    )


def skip_checkov(resource: IConstruct, check_id: str, reason: str) -> None:
    """Record in ``resource``'s template metadata that checkov's ``check_id`` does not apply, and why.

    Skips already there are kept; skipping the same check again (a function invoked by two constructs)
    adds the new reason to the comment, so the comment explains every use of the resource."""
    if len(reason.split()) < 5:
        raise ValueError(f"{resource.node.path}: the reason to skip {check_id} must say why, not {reason!r}")
    cfn = cfn_resource_of(resource)
    existing = cfn.get_metadata(CHECKOV_METADATA_KEY) or {}
    skips = [dict(skip) for skip in existing.get("skip", [])]
    for skip in skips:
        if skip["id"] == check_id:
            if reason not in skip["comment"]:
                skip["comment"] = f"{skip['comment']} {reason}"
            break
    else:
        skips.append({"id": check_id, "comment": reason})
    cfn.add_metadata(CHECKOV_METADATA_KEY, {**existing, "skip": skips})


def explain_synchronous_invoker(
    function: lambda_.IFunction, *, invoker: str, concurrency: str | None
) -> None:
    """``function`` is invoked synchronously by ``invoker``: the construct that wires the invocation says so.

    A function DLQ (checkov CKV_AWS_116) only receives failed *asynchronous* invocations; the constructs
    of asyncstack invoke functions synchronously only, and the invoker handles failures. ``concurrency``
    says what bounds or absorbs the function's concurrency (CKV_AWS_115, reserved concurrency), or None
    when the invoker cannot say, so that the check keeps reporting it.
    """
    cfn = function.node.default_child
    if not isinstance(cfn, lambda_.CfnFunction):
        return  # an imported function: its own template explains it
    skip_checkov(
        cfn,
        "CKV_AWS_116",
        f"Invoked synchronously by {invoker}. A function DLQ only receives failed asynchronous "
        "invocations, and asyncstack wires none to its functions.",
    )
    if concurrency is not None and cfn.reserved_concurrent_executions is None:
        skip_checkov(
            cfn,
            "CKV_AWS_115",
            f"Concurrency through {invoker}: {concurrency}. No reserved concurrency: it would take capacity "
            "from the account's unreserved pool, which Lambda keeps at 10 or more, so on a new account "
            "(quota 10) any reservation fails the deploy.",
        )
