"""DynamoDB tables the stack's way: on demand, encrypted, point-in-time recovery on."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from asyncstack.cdk.nag import skip_checkov


def on_demand_table(
    scope: Construct, construct_id: str, key: str, *, ttl: str | None = None
) -> dynamodb.Table:
    """A table keyed by the string ``key``. Tables with a TTL hold short-lived records and are
    destroyed with the stack; the others hold the business's data and are retained."""
    table = dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        time_to_live_attribute=ttl,
        removal_policy=RemovalPolicy.DESTROY if ttl else RemovalPolicy.RETAIN,
    )
    skip_checkov(
        table,
        "CKV_AWS_119",
        "Encrypted at rest with KMS under the AWS managed key aws/dynamodb (SSESpecification SSEEnabled). "
        "Access is granted per function and action by IAM; a customer managed key would add a key policy, "
        "a monthly fee and KMS requests for controls the stack does not use (cross-account access, "
        "disabling the key to lock the data).",
    )
    return table
