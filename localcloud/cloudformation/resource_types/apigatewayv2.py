"""API Gateway v2 (HTTP API) types moto's CloudFormation lacks: Api, Integration, Route and Stage, each
the real resource in moto's apigatewayv2 backend, which the local API serves (payload 1.0 and 2.0)."""

from __future__ import annotations

import contextlib
from typing import Any

from moto.apigatewayv2.models import ApiGatewayV2Backend, apigatewayv2_backends
from moto.core.common_models import CloudFormationModel

from ._base import CfnResource, properties, tag_map


def _backend(account_id: str, region_name: str) -> ApiGatewayV2Backend:
    return apigatewayv2_backends[account_id][region_name]


class ApiGatewayV2Api(CfnResource, CloudFormationModel):
    """An HTTP API; Ref is its id, ``ApiEndpoint`` its (AWS-shaped) URL."""

    TYPE = "AWS::ApiGatewayV2::Api"
    REF = "api_id"
    ATTRIBUTES = {"ApiId": "api_id", "ApiEndpoint": "api_endpoint"}

    def __init__(self, api: Any) -> None:
        self.api_id = api.api_id
        self.api_endpoint = api.api_endpoint

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayV2Api:
        props = properties(cloudformation_json)
        api = _backend(account_id, region_name).create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression", "$request.header.x-api-key"),
            cors_configuration=props.get("CorsConfiguration"),  # type: ignore[arg-type]
            description=props.get("Description", ""),
            disable_schema_validation=props.get("DisableSchemaValidation"),  # type: ignore[arg-type]
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint"),  # type: ignore[arg-type]
            name=props.get("Name", resource_name),
            protocol_type=props.get("ProtocolType", "HTTP"),
            route_selection_expression=props.get("RouteSelectionExpression", "$request.method $request.path"),
            tags=tag_map(props.get("Tags")),
            version=props.get("Version", ""),
        )
        return cls(api)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> ApiGatewayV2Api:
        props = properties(cloudformation_json)
        api = _backend(account_id, region_name).get_api(original_resource.api_id)
        api.name = props.get("Name", api.name)
        api.description = props.get("Description", "")
        api.cors_configuration = props.get("CorsConfiguration")
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_api(self.api_id)


class ApiGatewayV2Integration(CfnResource, CloudFormationModel):
    """An integration of an HTTP API (AWS_PROXY to a function, with its payload format version)."""

    TYPE = "AWS::ApiGatewayV2::Integration"
    REF = "integration_id"

    def __init__(self, api_id: str, integration_id: str) -> None:
        self.api_id = api_id
        self.integration_id = integration_id

    @staticmethod
    def _fields(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "connection_id": props.get("ConnectionId"),
            "connection_type": props.get("ConnectionType", "INTERNET"),
            "content_handling_strategy": props.get("ContentHandlingStrategy"),
            "credentials_arn": props.get("CredentialsArn"),
            "description": props.get("Description", ""),
            "integration_method": props.get("IntegrationMethod", "POST"),
            "integration_subtype": props.get("IntegrationSubtype"),
            "integration_type": props["IntegrationType"],
            "integration_uri": props.get("IntegrationUri", ""),
            "passthrough_behavior": props.get("PassthroughBehavior"),
            "payload_format_version": props.get("PayloadFormatVersion"),
            "request_parameters": props.get("RequestParameters"),
            "request_templates": props.get("RequestTemplates"),
            "response_parameters": props.get("ResponseParameters"),
            "template_selection_expression": props.get("TemplateSelectionExpression"),
            "timeout_in_millis": props.get("TimeoutInMillis"),
            "tls_config": props.get("TlsConfig"),
        }

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayV2Integration:
        props = properties(cloudformation_json)
        integration = _backend(account_id, region_name).create_integration(
            api_id=props["ApiId"], **cls._fields(props)
        )
        return cls(props["ApiId"], integration.id)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> ApiGatewayV2Integration:
        props = properties(cloudformation_json)
        api = _backend(account_id, region_name).get_api(original_resource.api_id)
        integration = api.integrations[original_resource.integration_id]
        for name, value in cls._fields(props).items():
            setattr(integration, name, value)
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):  # its API may be gone already
            _backend(account_id, region_name).delete_integration(self.api_id, self.integration_id)


class ApiGatewayV2Route(CfnResource, CloudFormationModel):
    """A route of an HTTP API (``GET /items/{id}``, ``ANY /{proxy+}``, ``$default``) to its target."""

    TYPE = "AWS::ApiGatewayV2::Route"
    REF = "route_id"

    def __init__(self, api_id: str, route_id: str) -> None:
        self.api_id = api_id
        self.route_id = route_id

    @staticmethod
    def _fields(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "api_key_required": bool(props.get("ApiKeyRequired", False)),
            "authorization_scopes": props.get("AuthorizationScopes") or [],
            "authorization_type": props.get("AuthorizationType", "NONE"),
            "authorizer_id": props.get("AuthorizerId"),
            "model_selection_expression": props.get("ModelSelectionExpression"),
            "operation_name": props.get("OperationName"),
            "request_models": props.get("RequestModels"),
            "request_parameters": props.get("RequestParameters"),
            "route_key": props["RouteKey"],
            "route_response_selection_expression": props.get("RouteResponseSelectionExpression"),
            "target": props.get("Target", ""),
        }

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayV2Route:
        props = properties(cloudformation_json)
        route = _backend(account_id, region_name).create_route(api_id=props["ApiId"], **cls._fields(props))
        return cls(props["ApiId"], route.route_id)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> ApiGatewayV2Route:
        props = properties(cloudformation_json)
        route = (
            _backend(account_id, region_name)
            .get_api(original_resource.api_id)
            .routes[original_resource.route_id]
        )
        for name, value in cls._fields(props).items():
            setattr(route, name, value)
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):
            _backend(account_id, region_name).delete_route(self.api_id, self.route_id)


class ApiGatewayV2Stage(CfnResource, CloudFormationModel):
    """A stage of an HTTP API (``$default`` serves at the API's root); Ref is the stage name."""

    TYPE = "AWS::ApiGatewayV2::Stage"
    NAME_PROPERTY = "StageName"
    REF = "name"

    def __init__(self, api_id: str, name: str) -> None:
        self.api_id = api_id
        self.name = name

    @staticmethod
    def _config(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "stageName": props["StageName"],
            "autoDeploy": bool(props.get("AutoDeploy", False)),
            "description": props.get("Description"),
            "stageVariables": props.get("StageVariables") or {},
            "tags": props.get("Tags") or {},
            "accessLogSettings": props.get("AccessLogSettings"),
        }

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayV2Stage:
        props = properties(cloudformation_json)
        props.setdefault("StageName", resource_name)
        _backend(account_id, region_name).create_stage(props["ApiId"], cls._config(props))
        return cls(props["ApiId"], props["StageName"])

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> ApiGatewayV2Stage:
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):
            _backend(account_id, region_name).delete_stage(self.api_id, self.name)
