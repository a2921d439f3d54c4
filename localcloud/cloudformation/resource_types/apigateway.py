"""API Gateway REST types moto lacks: Stage, ApiKey, UsagePlan, UsagePlanKey and Account."""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar

from moto.apigateway.exceptions import ApiKeyNotFoundException, NotFoundException
from moto.apigateway.models import APIGatewayBackend, Stage, apigateway_backends
from moto.core.common_models import CloudFormationModel

from ._base import CfnResource, changed, compact, properties, tag_map, to_bool, to_float, to_int

# Stage MethodSettings property -> the PATCH path suffix moto's Stage.apply_operations understands
_METHOD_SETTINGS = {
    "CacheDataEncrypted": "caching/dataEncrypted",
    "CacheTtlInSeconds": "caching/ttlInSeconds",
    "CachingEnabled": "caching/enabled",
    "DataTraceEnabled": "logging/dataTrace",
    "LoggingLevel": "logging/loglevel",
    "MetricsEnabled": "metrics/enabled",
    "ThrottlingBurstLimit": "throttling/burstLimit",
    "ThrottlingRateLimit": "throttling/rateLimit",
}


def _backend(account_id: str, region_name: str) -> APIGatewayBackend:
    return apigateway_backends[account_id][region_name]


def _configure_stage(stage: Stage, props: dict[str, Any]) -> None:
    """Make the stage exactly what the template says (also undoes what an earlier version set)."""
    stage.deployment_id = props.get("DeploymentId")
    stage.description = props.get("Description", "")
    stage.variables = dict(props.get("Variables") or {})
    stage.cache_cluster_enabled = to_bool(props.get("CacheClusterEnabled"))
    stage.cache_cluster_status = "AVAILABLE" if stage.cache_cluster_enabled else None
    stage.cache_cluster_size = props.get("CacheClusterSize")
    stage.tracing_enabled = to_bool(props["TracingEnabled"]) if "TracingEnabled" in props else None
    stage.tags = tag_map(props.get("Tags")) or None
    stage.method_settings = {}
    access_log = props.get("AccessLogSetting")
    stage.access_log_settings = (
        compact(destinationArn=access_log.get("DestinationArn"), format=access_log.get("Format"))
        if access_log
        else None
    )
    operations = []
    for setting in props.get("MethodSettings") or []:
        resource_path = setting.get("ResourcePath", "/*")
        path = "*" if resource_path == "/*" else resource_path.replace("/", "~1")
        for key, suffix in _METHOD_SETTINGS.items():
            if key in setting:
                value = setting[key]
                text = str(value).lower() if isinstance(value, bool) else str(value)
                operations.append(
                    {
                        "op": "replace",
                        "path": f"/{path}/{setting.get('HttpMethod', '*')}/{suffix}",
                        "value": text,
                    }
                )
    stage.apply_operations(operations)


class ApiGatewayStage(CfnResource, CloudFormationModel):
    """Ref is the stage name; a stage a Deployment's StageName already made is adopted and reconfigured."""

    def __init__(self, rest_api_id: str, name: str, props: dict[str, Any]) -> None:
        self.rest_api_id = rest_api_id
        self.name = name
        self.props = props

    TYPE = "AWS::ApiGateway::Stage"
    NAME_PROPERTY = "StageName"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ApiGatewayStage:
        props = properties(cloudformation_json)
        backend = _backend(account_id, region_name)
        api = backend.get_rest_api(props["RestApiId"])
        stage = api.stages.get(resource_name) or backend.create_stage(
            props["RestApiId"],
            resource_name,
            props.get("DeploymentId"),  # type: ignore[arg-type]
        )
        _configure_stage(stage, props)
        return cls(props["RestApiId"], resource_name, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayStage,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayStage:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "RestApiId", "StageName"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        stage = _backend(account_id, region_name).get_stage(
            original_resource.rest_api_id, original_resource.name
        )
        _configure_stage(stage, props)
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(NotFoundException):
            _backend(account_id, region_name).delete_stage(self.rest_api_id, self.name)


def _api_key_fields(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": props.get("Description"),
        "enabled": to_bool(props.get("Enabled")),
        "stageKeys": [f"{key['RestApiId']}/{key['StageName']}" for key in props.get("StageKeys") or []],
        "tags": tag_map(props.get("Tags")) or None,
        "customerId": props.get("CustomerId"),
    }


class ApiGatewayApiKey(CfnResource, CloudFormationModel):
    """Ref is the key id; Name, Value and GenerateDistinctId changes replace the key."""

    REF = "id"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"APIKeyId": "id"}

    def __init__(self, key_id: str, props: dict[str, Any]) -> None:
        self.id = key_id
        self.props = props

    TYPE = "AWS::ApiGateway::ApiKey"
    NAME_PROPERTY = "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ApiGatewayApiKey:
        props = properties(cloudformation_json)
        payload = compact(
            name=resource_name,
            value=props.get("Value"),
            generateDistinctId=to_bool(props.get("GenerateDistinctId")),
            **_api_key_fields(props),
        )
        key = _backend(account_id, region_name).create_api_key(payload)
        return cls(key.id, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayApiKey,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayApiKey:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "Name", "Value", "GenerateDistinctId"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        key = _backend(account_id, region_name).get_api_key(original_resource.id)
        fields = _api_key_fields(props)
        key.description = fields["description"]
        key.enabled = fields["enabled"]
        key.stage_keys = fields["stageKeys"]
        key.tags = fields["tags"]
        key.customer_id = fields["customerId"]
        key.last_updated_date = int(time.time())
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(ApiKeyNotFoundException):
            _backend(account_id, region_name).delete_api_key(self.id)


def _usage_plan_fields(props: dict[str, Any]) -> dict[str, Any]:
    def throttle(value: dict[str, Any] | None) -> dict[str, Any]:
        value = value or {}
        return compact(burstLimit=to_int(value.get("BurstLimit")), rateLimit=to_float(value.get("RateLimit")))

    stages = [
        compact(
            apiId=stage["ApiId"],
            stage=stage["Stage"],
            throttle={path: throttle(limits) for path, limits in stage["Throttle"].items()}
            if stage.get("Throttle")
            else None,
        )
        for stage in props.get("ApiStages") or []
    ]
    quota = props.get("Quota") or {}
    return {
        "name": props.get("UsagePlanName"),
        "description": props.get("Description"),
        "apiStages": stages,
        "throttle": throttle(props.get("Throttle")),
        "quota": compact(
            limit=to_int(quota.get("Limit")), offset=to_int(quota.get("Offset")), period=quota.get("Period")
        ),
        "tags": tag_map(props.get("Tags")) or None,
    }


class ApiGatewayUsagePlan(CfnResource, CloudFormationModel):
    """Ref is the plan id; every property updates in place."""

    REF = "id"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "id"}

    def __init__(self, plan_id: str) -> None:
        self.id = plan_id

    TYPE = "AWS::ApiGateway::UsagePlan"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ApiGatewayUsagePlan:
        plan = _backend(account_id, region_name).create_usage_plan(
            _usage_plan_fields(properties(cloudformation_json))
        )
        return cls(plan.id)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayUsagePlan,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayUsagePlan:
        plan = _backend(account_id, region_name).get_usage_plan(original_resource.id)
        fields = _usage_plan_fields(properties(cloudformation_json))
        plan.name = fields["name"]
        plan.description = fields["description"]
        plan.api_stages = fields["apiStages"]
        plan.throttle = fields["throttle"]
        plan.quota = fields["quota"]
        plan.tags = fields["tags"]
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        backend.usage_plans.pop(self.id, None)
        backend.usage_plan_keys.pop(self.id, None)


class ApiGatewayUsagePlanKey(CfnResource, CloudFormationModel):
    """Ref is the key id; any change replaces the association."""

    REF = "key_id"
    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "key_id"}

    def __init__(self, usage_plan_id: str, key_id: str) -> None:
        self.usage_plan_id = usage_plan_id
        self.key_id = key_id

    TYPE = "AWS::ApiGateway::UsagePlanKey"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ApiGatewayUsagePlanKey:
        props = properties(cloudformation_json)
        _backend(account_id, region_name).create_usage_plan_key(
            props["UsagePlanId"], {"keyId": props["KeyId"], "keyType": props["KeyType"]}
        )
        return cls(props["UsagePlanId"], props["KeyId"])

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayUsagePlanKey,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayUsagePlanKey:
        replacement = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        if (original_resource.usage_plan_id, original_resource.key_id) != (
            replacement.usage_plan_id,
            replacement.key_id,
        ):
            original_resource.delete(account_id, region_name)
        return replacement

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).usage_plan_keys.get(self.usage_plan_id, {}).pop(self.key_id, None)


class ApiGatewayAccount(CfnResource, CloudFormationModel):
    """Sets the region's API Gateway CloudWatch Logs role (the only thing the resource configures).

    Deleting it leaves the role ARN in place, as CloudFormation does: the setting is account-wide and
    API Gateway has no call to unset it.
    """

    ATTRIBUTES: ClassVar[dict[str, str]] = {"Id": "name"}

    def __init__(self, name: str) -> None:
        self.name = name

    TYPE = "AWS::ApiGateway::Account"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> ApiGatewayAccount:
        role_arn = properties(cloudformation_json).get("CloudWatchRoleArn")
        if role_arn:
            _backend(account_id, region_name).update_account(
                [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
        return cls(resource_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: ApiGatewayAccount,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayAccount:
        return cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        """Nothing to undo: see the class docstring."""
