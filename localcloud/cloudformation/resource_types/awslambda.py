"""AWS::Lambda::EventInvokeConfig and AWS::Lambda::Url on moto's Lambda backend."""

from __future__ import annotations

import contextlib
from typing import Any

from moto.awslambda.exceptions import UnknownEventConfig, UnknownFunctionException
from moto.awslambda.models import LambdaBackend, lambda_backends
from moto.core.common_models import CloudFormationModel

from ._base import CfnResource, changed, compact, properties, to_int


def _backend(account_id: str, region_name: str) -> LambdaBackend:
    return lambda_backends[account_id][region_name]


class LambdaEventInvokeConfig(CfnResource, CloudFormationModel):
    """Async-invoke retries, event age and destinations of a function.

    moto keeps one config per function and ignores the qualifier, so Qualifier is recorded (in the physical
    id, ``<function>|<qualifier>`` as CloudFormation reports it) but every qualifier shares the config.
    """

    REF = "physical_id"

    def __init__(self, function_name: str, props: dict[str, Any]) -> None:
        self.function_name = function_name
        self.props = props
        self.physical_id = f"{function_name}|{props['Qualifier']}"

    TYPE = "AWS::Lambda::EventInvokeConfig"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaEventInvokeConfig:
        props = properties(cloudformation_json)
        backend = _backend(account_id, region_name)
        function_name = props["FunctionName"]
        config = compact(
            MaximumRetryAttempts=to_int(props.get("MaximumRetryAttempts")),
            MaximumEventAgeInSeconds=to_int(props.get("MaximumEventAgeInSeconds")),
            DestinationConfig=props.get("DestinationConfig"),
        )
        # moto appends on every put and reads the first config: drop the old one so a put replaces, as in AWS
        with contextlib.suppress(UnknownEventConfig):
            backend.delete_function_event_invoke_config(function_name)
        backend.put_function_event_invoke_config(function_name, config)
        return cls(function_name, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: LambdaEventInvokeConfig,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> LambdaEventInvokeConfig:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "FunctionName", "Qualifier"):
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(UnknownEventConfig, UnknownFunctionException):
            _backend(account_id, region_name).delete_function_event_invoke_config(self.function_name)


class LambdaUrl(CfnResource, CloudFormationModel):
    """A function URL; the local API serves it (``/lambda-url/{url-id}/...``). Ref is the function's ARN."""

    TYPE = "AWS::Lambda::Url"
    REF = "function_arn"
    ATTRIBUTES = {"FunctionUrl": "url", "FunctionArn": "function_arn"}

    def __init__(self, function_arn: str, url: str) -> None:
        self.function_arn = function_arn
        self.url = url

    @staticmethod
    def _config(props: dict[str, Any]) -> dict[str, Any]:
        return compact(
            AuthType=props.get("AuthType", "NONE"), Cors=props.get("Cors"), InvokeMode=props.get("InvokeMode")
        )

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LambdaUrl:
        props = properties(cloudformation_json)
        config = _backend(account_id, region_name).create_function_url_config(
            props["TargetFunctionArn"], cls._config(props)
        )
        return cls(config.function.function_arn, config.url)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource: LambdaUrl, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> LambdaUrl:  # fmt: skip
        props = properties(cloudformation_json)
        backend = _backend(account_id, region_name)
        if props["TargetFunctionArn"] != original_resource.function_arn:
            original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
        backend.update_function_url_config(original_resource.function_arn, cls._config(props))
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(UnknownFunctionException, Exception):
            _backend(account_id, region_name).delete_function_url_config(self.function_arn)
