"""AWS::S3::BucketPolicy on moto's S3 backend: the policy the local endpoint authorises bucket and object
calls with (``localcloud.iam``)."""

from __future__ import annotations

import contextlib
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.s3.models import s3_backends

from ._base import CfnResource, properties, to_json


class S3BucketPolicy(CfnResource, CloudFormationModel):
    """Sets the bucket's policy; removing the resource deletes it."""

    TYPE = "AWS::S3::BucketPolicy"

    def __init__(self, name: str, bucket: str) -> None:
        self.name = name
        self.bucket = bucket

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> S3BucketPolicy:
        props = properties(cloudformation_json)
        s3_backends[account_id]["aws"].put_bucket_policy(
            props["Bucket"], to_json(props["PolicyDocument"]).encode()
        )
        return cls(resource_name, str(props["Bucket"]))

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource: S3BucketPolicy, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> S3BucketPolicy:  # fmt: skip
        updated = cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )
        if updated.bucket != original_resource.bucket:
            original_resource.delete(account_id, region_name)
        return updated

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):  # the bucket may be gone first
            s3_backends[account_id]["aws"].delete_bucket_policy(self.bucket)
