"""Private S3 buckets: encrypted, TLS-only, no public access, access-logged, versioned, expiring.

Versioning keeps an overwritten or deleted object recoverable for ``NONCURRENT_DAYS`` days, after which
the lifecycle rule removes the old version, so it costs little.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from asyncstack.cdk.nag import skip_checkov

NONCURRENT_DAYS = 7


def _bucket(scope: Construct, construct_id: str, *, expire_after: Duration) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                expiration=expire_after,
                noncurrent_version_expiration=Duration.days(NONCURRENT_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )


def access_log_bucket(scope: Construct, construct_id: str) -> s3.Bucket:
    """Where the other buckets' server access logs go (kept 90 days)."""
    bucket = _bucket(scope, construct_id, expire_after=Duration.days(90))
    Validations.of(bucket).acknowledge(
        Acknowledgment(
            id="AwsSolutions::AwsSolutions-S1",
            reason="This is the access-log bucket; logging its own access would log every log delivery.",
        )
    )
    skip_checkov(
        bucket,
        "CKV_AWS_18",
        "This is the access-log bucket: logging its own access would write a log object for every log "
        "delivery, into itself, without end.",
    )
    return bucket


def private_bucket(
    scope: Construct, construct_id: str, *, access_logs: s3.Bucket, expire_after: Duration
) -> s3.Bucket:
    """A bucket for artifacts the stack produces; objects expire after ``expire_after``.

    Access logs are delivered under a bucket policy (the log bucket owns its objects), not the
    legacy ``LogDeliveryWrite`` ACL that CDK's ``server_access_logs_bucket`` falls back to.
    """
    bucket = _bucket(scope, construct_id, expire_after=expire_after)
    prefix = f"{construct_id}/"
    cfn = bucket.node.default_child
    assert isinstance(cfn, s3.CfnBucket)
    cfn.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
        destination_bucket_name=access_logs.bucket_name, log_file_prefix=prefix
    )
    access_logs.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[access_logs.arn_for_objects(f"{prefix}*")],
            conditions={
                "ArnLike": {"aws:SourceArn": bucket.bucket_arn},
                "StringEquals": {"aws:SourceAccount": Stack.of(bucket).account},
            },
        )
    )
    return bucket
