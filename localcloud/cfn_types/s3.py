"""AWS::S3::BucketPolicy on moto's S3 backend (the CDK bootstrap stack declares one)."""

from __future__ import annotations

import contextlib
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends

from ._base import CfnResource, properties, to_json


class S3BucketPolicy(CfnResource, CloudFormationModel):
    """Sets the bucket's policy; deleting the resource deletes the policy."""

    def __init__(self, name: str, bucket: str, account_id: str) -> None:
        self.name = name
        self.bucket = bucket
        self.account_id = account_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

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
        policy = to_json(props["PolicyDocument"]).encode()
        s3_backends[account_id]["aws"].put_bucket_policy(props["Bucket"], policy)
        return cls(resource_name, props["Bucket"], account_id)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: S3BucketPolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> S3BucketPolicy:
        return cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(MissingBucket):
            s3_backends[account_id]["aws"].delete_bucket_policy(self.bucket)
