"""AWS::Pipes::Pipe on moto's EventBridge Pipes backend; ``localcloud.pipes`` runs the pipes."""

from __future__ import annotations

import contextlib
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.pipes.models import EventBridgePipesBackend, pipes_backends

from ._base import CfnResource, properties, tag_map


def _backend(account_id: str, region_name: str) -> EventBridgePipesBackend:
    return pipes_backends[account_id][region_name]


class PipesPipe(CfnResource, CloudFormationModel):
    """A pipe: source, optional filter and enrichment, target. Ref is its name."""

    TYPE = "AWS::Pipes::Pipe"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = {"Arn": "arn", "CurrentState": "state"}

    def __init__(self, name: str, arn: str) -> None:
        self.name = name
        self.arn = arn
        self.state = "RUNNING"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> PipesPipe:
        props = properties(cloudformation_json)
        name = props.get("Name") or resource_name
        pipe = _backend(account_id, region_name).create_pipe(
            name=name, description=props.get("Description"), desired_state=props.get("DesiredState", "RUNNING"),
            source=props["Source"], source_parameters=props.get("SourceParameters"),
            enrichment=props.get("Enrichment"), enrichment_parameters=props.get("EnrichmentParameters"),
            target=props["Target"], target_parameters=props.get("TargetParameters"), role_arn=props["RoleArn"],
            tags=tag_map(props.get("Tags")), log_configuration=props.get("LogConfiguration"),
            kms_key_identifier=props.get("KmsKeyIdentifier"),
        )  # fmt: skip
        return cls(name, pipe.arn)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource: PipesPipe, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> PipesPipe:  # fmt: skip
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):
            _backend(account_id, region_name).delete_pipe(self.name)
