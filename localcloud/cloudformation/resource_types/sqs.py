"""AWS::SQS::QueuePolicy on moto's SQS backend."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from moto.core.common_models import CloudFormationModel
from moto.sqs.exceptions import QueueDoesNotExist
from moto.sqs.models import SQSBackend, sqs_backends

from ._base import CfnResource, properties, to_json


def _queue(url: str, account_id: str, region_name: str) -> tuple[SQSBackend, str]:
    """Backend and queue name of a queue URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``)."""
    parsed = urlparse(url)
    account, _, name = parsed.path.strip("/").rpartition("/")
    region = re.match(r"sqs\.([a-z0-9-]+)\.", parsed.netloc or "")
    return sqs_backends[account or account_id][region.group(1) if region else region_name], name


def _set_policy(urls: Iterable[str], policy: str, account_id: str, region_name: str) -> None:
    for url in urls:
        backend, name = _queue(url, account_id, region_name)
        if policy:
            backend.set_queue_attributes(name, {"Policy": policy})
        else:
            with contextlib.suppress(QueueDoesNotExist):
                backend.set_queue_attributes(name, {"Policy": ""})


class SqsQueuePolicy(CfnResource, CloudFormationModel):
    """Sets the Policy attribute of each listed queue; removing it clears the queues' policy."""

    def __init__(self, name: str, queues: list[str]) -> None:
        self.name = name
        self.queues = queues

    TYPE = "AWS::SQS::QueuePolicy"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SqsQueuePolicy:
        props = properties(cloudformation_json)
        _set_policy(props["Queues"], to_json(props["PolicyDocument"]), account_id, region_name)
        return cls(resource_name, list(props["Queues"]))

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SqsQueuePolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SqsQueuePolicy:
        updated = cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )
        dropped = [url for url in original_resource.queues if url not in updated.queues]
        _set_policy(dropped, "", account_id, region_name)
        return updated

    def delete(self, account_id: str, region_name: str) -> None:
        _set_policy(self.queues, "", account_id, region_name)
