"""CloudFormation resource types moto's CloudFormation lacks, backed by moto's own service backends.

Without these, moto reports such resources CREATE_COMPLETE while creating nothing. moto builds its type
map once (``lru_cache``) from ``CloudFormationModel.__subclasses__()`` keyed by ``cloudformation_type()``,
so the models here subclass ``CloudFormationModel`` directly and ``register()`` drops the cached map.
moto's model metaclass files each model under ``cls.__module__.split(".")[1]`` (here ``cfn_types``), so a
model module needs a dotted path of at least two segments and model class names must be unique within it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from moto.core.common_models import CloudFormationModel

from . import apigateway, apigatewayv2, awslambda, cloudwatch, pipes, s3, scheduler, secretsmanager, sns, sqs

MODELS: tuple[type[CloudFormationModel], ...] = (
    sns.SnsSubscription,
    sns.SnsTopicPolicy,
    sqs.SqsQueuePolicy,
    s3.S3BucketPolicy,
    scheduler.SchedulerScheduleGroup,
    scheduler.SchedulerSchedule,
    cloudwatch.CloudWatchAlarm,
    awslambda.LambdaEventInvokeConfig,
    awslambda.LambdaUrl,
    apigateway.ApiGatewayStage,
    apigateway.ApiGatewayApiKey,
    apigateway.ApiGatewayUsagePlan,
    apigateway.ApiGatewayUsagePlanKey,
    apigateway.ApiGatewayAccount,
    apigatewayv2.ApiGatewayV2Api,
    apigatewayv2.ApiGatewayV2Integration,
    apigatewayv2.ApiGatewayV2Route,
    apigatewayv2.ApiGatewayV2Stage,
    secretsmanager.SecretsManagerSecret,
    pipes.PipesPipe,
)

# Types left out on purpose, and why (shown next to each such resource by `up` and `status`).
NOT_HONOURED: dict[str, str] = {}


def _tls_only_deny(document: Any) -> bool:
    """Whether a policy has a Deny statement conditioned on ``aws:SecureTransport``."""
    statements = (document or {}).get("Statement") or [] if isinstance(document, dict) else []
    return any(
        isinstance(s, dict)
        and s.get("Effect") == "Deny"
        and "aws:securetransport" in json.dumps(s.get("Condition")).lower()
        for s in (statements if isinstance(statements, list) else [statements])
    )


def _set(value: Any) -> bool:
    return value not in (None, "", [], {}, False)


# Properties the local cloud does not honour, by type: (property, whether a value is not honoured, what
# will not happen locally). Listed beside each resource that sets them, like the types above.
NOT_HONOURED_PROPERTIES: dict[str, tuple[tuple[str, Callable[[Any], bool], str], ...]] = {
    "AWS::Lambda::Function": (
        ("PackageType", lambda v: v == "Image", "container image functions are not run (only zip packages)"),
        ("VpcConfig", _set, "functions run on this machine's network, not in a VPC"),
        ("FileSystemConfigs", _set, "EFS file systems are not mounted"),
        ("SnapStart", _set, "SnapStart is not applied"),
    ),
    "AWS::Lambda::EventSourceMapping": (
        ("TumblingWindowInSeconds", _set, "tumbling windows are not supported"),
    ),
    "AWS::ApiGateway::Method": (
        ("AuthorizationType", lambda v: v in ("CUSTOM", "COGNITO_USER_POOLS"),
         "custom and Cognito authorizers are not run: the method is served without them"),
    ),
    "AWS::ApiGatewayV2::Route": (
        ("AuthorizationType", lambda v: v not in ("NONE", None), "authorizers are not run: the route answers 500"),
    ),
    **dict.fromkeys(
        ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"),
        (("PolicyDocument", _tls_only_deny,
          "its TLS-only deny statements never match: the local endpoint is plain HTTP and aws:SecureTransport "
          "is taken as true"),),
    ),
    "AWS::DynamoDB::Table": (
        ("TimeToLiveSpecification", lambda v: bool((v or {}).get("Enabled")), "items do not expire (no TTL)"),
    ),
    "AWS::DynamoDB::GlobalTable": (
        ("TimeToLiveSpecification", lambda v: bool((v or {}).get("Enabled")), "items do not expire (no TTL)"),
    ),
}  # fmt: skip


def not_honoured_properties(resource_type: str, props: dict[str, Any]) -> list[tuple[str, str]]:
    """(property, why) for each property of a resource that the local cloud does not honour."""
    found = []
    for name, applies, why in NOT_HONOURED_PROPERTIES.get(resource_type, ()):
        if name not in props:
            continue
        if _intrinsic(props[name]):  # known only at deploy: say so rather than guess
            found.append((name, f"{why} (if set)"))
        elif applies(props[name]):
            found.append((name, why))
    return found


def _intrinsic(value: Any) -> bool:
    """Whether a template value is an unresolved function (``{"Ref": ...}``, ``{"Fn::If": ...}``)."""
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


REGISTERED_TYPES: frozenset[str] = frozenset(model.cloudformation_type() for model in MODELS)

# placeholders in moto's map: "?" is Custom::*, "AWS::SERVICE::RESOURCE" the base class default
_REAL_TYPE = re.compile(r"AWS::\w+::\w+")
_PLACEHOLDER = "AWS::SERVICE::RESOURCE"


_registered: list[bool] = []


def register() -> None:
    """Make moto's CloudFormation see the models above, even if it already built its type map (once:
    the models are defined at import, so one rebuild of moto's cached map includes them for good)."""
    from moto.cloudformation import parsing

    if _registered:
        return
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    _registered.append(True)


def supported_types() -> frozenset[str]:
    """Every AWS:: type moto's CloudFormation creates once registered (moto's own plus REGISTERED_TYPES).

    Custom resources (``Custom::*``, ``AWS::CloudFormation::CustomResource``) are handled too
    (``custom_resources``) but have no fixed names: use ``is_supported`` for a single type.
    """
    from moto.cloudformation import parsing

    register()
    return frozenset(t for t in parsing.get_model_map() if _REAL_TYPE.fullmatch(t) and t != _PLACEHOLDER)


def is_supported(resource_type: str) -> bool:
    from localcloud.cloudformation.custom_resources import is_custom

    return is_custom(resource_type) or resource_type in supported_types()


__all__ = [
    "MODELS",
    "NOT_HONOURED_PROPERTIES",
    "REGISTERED_TYPES",
    "is_supported",
    "not_honoured_properties",
    "register",
    "supported_types",
]
