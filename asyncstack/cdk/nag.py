"""Acknowledging cdk-nag findings precisely: one finding, on one construct, with its reason.

cdk-nag names a wildcard resource as synthesized, e.g. ``<LogicalId.Arn>/exports/*``; these
helpers build that name from the construct, so an acknowledgment never covers more than meant.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct


def arn_of(resource: IConstruct) -> str:
    """How cdk-nag prints ``Fn::GetAtt [resource, Arn]`` of an L2's default child (or an L1)."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} has no CloudFormation resource"
    return f"<{Stack.of(cfn).get_logical_id(cfn)}.Arn>"


def acknowledge_wildcard(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge the IAM5 finding ``finding`` (``Resource::...`` or ``Action::...``) on ``scope``."""
    Validations.of(scope).acknowledge(
        Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[{finding}]", reason=reason)
    )
