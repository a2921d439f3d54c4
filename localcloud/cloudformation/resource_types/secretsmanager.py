"""AWS::SecretsManager::Secret on moto's Secrets Manager backend (``Ref`` is the secret's ARN)."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from moto.core.common_models import CloudFormationModel
from moto.secretsmanager.models import secretsmanager_backends

from ._base import CfnResource, physical_name, properties, tag_map


def _generated(spec: dict[str, Any]) -> str:
    """A value as GenerateSecretString describes it: a random password, inside a JSON template if given."""
    excluded = set(spec.get("ExcludeCharacters", ""))
    if spec.get("ExcludePunctuation"):
        excluded |= set(string.punctuation)
    alphabet = [c for c in string.ascii_letters + string.digits + string.punctuation if c not in excluded]
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        return json.dumps({**json.loads(template), key: password})
    return password


class SecretsManagerSecret(CfnResource, CloudFormationModel):
    """Creates the secret with its value (``SecretString`` or generated); deleting it deletes at once."""

    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    REF = "arn"
    ATTRIBUTES = {"Id": "arn"}

    def __init__(self, arn: str, name: str) -> None:
        self.arn = arn
        self.name = name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SecretsManagerSecret:
        props = properties(cloudformation_json)
        backend = secretsmanager_backends[account_id][region_name]
        name = props.get("Name") or physical_name(resource_name, 512)
        value = props.get("SecretString")
        if value is None and "GenerateSecretString" in props:
            value = _generated(props["GenerateSecretString"] or {})
        backend.create_secret(
            name=name, secret_string=value, secret_binary=None, description=props.get("Description"),
            tags=[{"Key": k, "Value": v} for k, v in tag_map(props.get("Tags")).items()],
            kms_key_id=props.get("KmsKeyId"), client_request_token=None, replica_regions=[],
            force_overwrite=False,
        )  # fmt: skip
        return cls(backend.describe_secret(name).arn, name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SecretsManagerSecret,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SecretsManagerSecret:
        # The value belongs to whoever set it since (rotation): an update keeps it, as CloudFormation does
        # unless SecretString itself changed.
        props = properties(cloudformation_json)
        if props.get("SecretString") is not None:
            backend: Any = secretsmanager_backends[account_id][region_name]  # its annotations omit None
            backend.put_secret_value(
                secret_id=original_resource.arn, secret_string=props["SecretString"], secret_binary=None,
                client_request_token=None, version_stages=["AWSCURRENT"],
            )  # fmt: skip
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        backend = secretsmanager_backends[account_id][region_name]
        if backend._is_valid_identifier(self.arn):
            backend.delete_secret(self.arn, recovery_window_in_days=None, force_delete_without_recovery=True)
