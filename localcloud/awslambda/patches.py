"""Where moto's Lambda must behave as AWS does: every invocation runs the real handler in the local
runtime, and CloudFormation's function properties are kept."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

# Called for every Lambda invocation moto receives, whatever the path (Invoke API, Step Functions
# tasks, SNS, EventBridge): (function model, event body, invocation type, request id)
# -> (payload, error type).
Invoker = Callable[[Any, str, str, str], tuple[bytes, str | None]]

_state: dict[str, Invoker | None] = {"invoker": None}


def set_invoker(invoker: Invoker | None) -> None:
    _state["invoker"] = invoker


def apply() -> None:
    from localcloud.awslambda import streams

    _lambda_cloudformation_properties()
    _invocations_through_the_runtime()
    streams.apply()


def _lambda_cloudformation_properties() -> None:
    """moto's ``AWS::Lambda::Function`` drops ``Layers``, ``LoggingConfig`` and ``TracingConfig``; Lambda
    honours them."""
    from moto.awslambda.models import LambdaFunction

    create = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    update = LambdaFunction.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def apply_extras(function: Any, properties: dict[str, Any]) -> Any:
        # moto resolves a Ref to a layer declared in the same stack to the model object, not its ARN.
        arns = [getattr(layer, "arn", layer) for layer in properties.get("Layers", [])]
        function.layers = function._get_layers_data(arns)
        function.log_group_override = (properties.get("LoggingConfig") or {}).get("LogGroup")
        function.dead_letter_target = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
        function.tracing_config = properties.get("TracingConfig") or {"Mode": "PassThrough"}
        return function

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        function = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        return apply_extras(function, cloudformation_json["Properties"])

    def update_from_cloudformation_json(  # noqa: PLR0917 (moto's signature)
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        function = update(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        return apply_extras(function, cloudformation_json["Properties"])

    LambdaFunction.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]
    LambdaFunction.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment]


def _invocations_through_the_runtime() -> None:
    """Every path into ``LambdaFunction.invoke`` runs the real handler in the local runtime."""
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import LambdaFunction

    def invoke(self: Any, body: str, request_headers: Any, response_headers: dict[str, str]) -> bytes:
        invoker: Invoker | None = _state["invoker"]
        if invoker is None:
            raise LambdaClientError("ServiceException", "the local runtime is not running")
        # Services that call moto in-process (SNS, EventBridge, S3) pass no headers: in AWS they
        # invoke asynchronously.
        invocation_type = (
            request_headers.get("X-Amz-Invocation-Type", "RequestResponse") if request_headers else "Event"
        )
        request_id = str(uuid.uuid4())
        payload, error = invoker(self, body or "{}", invocation_type, request_id)
        if error:
            response_headers["x-amz-function-error"] = error
        response_headers["x-amz-executed-version"] = "$LATEST"
        response_headers["x-amzn-RequestId"] = request_id
        return payload

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
