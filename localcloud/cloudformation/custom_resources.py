"""Lambda-backed custom resources (``Custom::*`` and ``AWS::CloudFormation::CustomResource``) with
CloudFormation's request and response protocol.

For each Create, Update and Delete the deploy sends the function a request (``RequestType``,
``ResponseURL``, ``StackId``, ``RequestId``, ``LogicalResourceId``, ``PhysicalResourceId``,
``ResourceProperties`` with every scalar as a string, as CloudFormation passes them, and
``OldResourceProperties`` on Update) and waits for the function's PUT to the response URL before it
goes on, so resources that read the custom resource's attributes get them. ``SUCCESS`` sets the
physical id and the ``Data`` that ``Fn::GetAtt`` reads; ``FAILED`` fails the resource, and with it the
stack, with CloudFormation's words ("Received response status [FAILED] from custom resource. Message
returned: ...").

moto invoked the function in the background and went on: the stack was complete before the function
ran, attributes read nothing, a FAILED answer was ignored, properties kept their JSON types (CDK's
bucket notification handler failed on ``True``), and Update and Delete never reached the function.

Where the local cloud differs: a function that fails, or returns, without responding fails the
resource at once (CloudFormation waits for the response until ``ServiceTimeout``, an hour by default);
a Delete whose function the stack's deletion already removed is skipped.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from localcloud.server import MOTO_LOCK

CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
SERVICE_TIMEOUT_SECONDS = 3600.0  # CloudFormation's default wait for a response
# How long a response may take to arrive after the function returned (a PUT still on its way).
LATE_RESPONSE_SECONDS = 5.0

log = logging.getLogger(__name__)

# Requests waiting for their response, by RequestId: None until the response (or the function's
# failure) arrives. The deploy waits on the condition, which releases moto's lock meanwhile: the
# function calls AWS and PUTs its response through the same endpoint.
_responses = threading.Condition(MOTO_LOCK)
_pending: dict[str, dict[str, Any] | None] = {}


class CustomResourceFailed(Exception):
    """The custom resource failed; ``reason`` in CloudFormation's words."""

    code = "CustomResourceFailed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_custom(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") or resource_type == CUSTOM_RESOURCE


def as_cloudformation_passes(value: Any) -> Any:
    """Properties as CloudFormation hands them to a custom resource: every scalar a string."""
    if isinstance(value, dict):
        return {key: as_cloudformation_passes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_cloudformation_passes(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _function(service_token: str, account_id: str, region: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account_id, region).get_function(service_token)


def _response_url(region: str, stack_id: str) -> str:
    from moto import settings

    return (
        f"http://127.0.0.1:{settings.moto_server_port()}/cloudformation_{region}/cfnresponse?stack={stack_id}"
    )


def send(
    resource: Any, request_type: str, *, account_id: str, region: str, old: Any = None
) -> dict[str, Any]:
    """One request to ``resource``'s function, waiting for its response; the response, or
    CustomResourceFailed."""
    function = _function(resource.service_token, account_id, region)
    request_id = str(uuid.uuid4())
    event = {
        "RequestType": request_type,
        "ServiceToken": resource.service_token,
        "ResponseURL": _response_url(region, resource.stack_id),
        "StackId": resource.stack_id,
        "RequestId": request_id,
        "LogicalResourceId": resource.logical_id,
        "ResourceType": resource.resource_type,
        "ResourceProperties": as_cloudformation_passes(resource.properties),
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = (old or resource).physical_resource_id
    if old is not None:
        event["OldResourceProperties"] = as_cloudformation_passes(old.properties)
    with _responses:
        _pending[request_id] = None
    threading.Thread(target=_invoke, args=(function, event), name=f"custom-resource-{request_id[:8]}").start()
    timeout = float(resource.properties.get("ServiceTimeout") or SERVICE_TIMEOUT_SECONDS)
    with _responses:
        answered = _responses.wait_for(lambda: _pending[request_id] is not None, timeout)
        response = _pending.pop(request_id) or {}
    if not answered:
        raise CustomResourceFailed(
            f"CloudFormation did not receive a response from your Custom Resource within {timeout:.0f} "
            f"seconds (RequestId: {request_id})"
        )
    if response.get("Status") != "SUCCESS":
        raise CustomResourceFailed(
            f"Received response status [{response.get('Status')}] from custom resource. "
            f"Message returned: {response.get('Reason') or ''} (RequestId: {request_id})"
        )
    return response


def _invoke(function: Any, event: dict[str, Any]) -> None:
    """Runs the function; if it ends without having responded, that ends the wait."""
    response_headers: dict[str, str] = {}
    try:
        payload = function.invoke(
            json.dumps(event), {"X-Amz-Invocation-Type": "RequestResponse"}, response_headers
        )
        failure = response_headers.get("x-amz-function-error") and payload.decode("utf-8", "replace")
    except Exception as error:  # the invocation itself failed (throttled, not runnable)
        failure = f"{type(error).__name__}: {error}"
    request_id = event["RequestId"]
    with _responses:
        if _responses.wait_for(  # answered, or already taken by the deploy (popped)
            lambda: _pending.get(request_id, {}) is not None, 0 if failure else LATE_RESPONSE_SECONDS
        ):
            return
        reason = (
            f"the function failed before it responded: {failure}"
            if failure
            else "the function returned without sending a response to the ResponseURL"
        )
        _pending[request_id] = {"Status": "FAILED", "Reason": reason}
        _responses.notify_all()


def _answered(body: dict[str, Any]) -> None:
    """A response PUT to the response URL."""
    with _responses:
        request_id = str(body.get("RequestId"))
        if request_id in _pending and _pending[request_id] is None:
            _pending[request_id] = body
            _responses.notify_all()


def apply() -> None:
    from moto.cloudformation import parsing
    from moto.cloudformation.custom_model import CustomModel
    from moto.cloudformation.responses import CloudFormationResponse

    def describe(
        resource: Any, *, stack_id: str, logical_id: str, resource_type: str, properties: dict[str, Any]
    ) -> Any:
        resource.stack_id, resource.logical_id, resource.resource_type = stack_id, logical_id, resource_type
        resource.properties = properties
        resource.service_token = properties["ServiceToken"]
        return resource

    def answered_with(resource: Any, response: dict[str, Any]) -> Any:
        resource.resource_name = response.get("PhysicalResourceId") or resource.resource_name
        resource.set_data(response.get("Data") or {})
        return resource

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        resource = describe(
            CustomModel(region_name, "", kwargs["LogicalId"], resource_name),  # type: ignore[abstract]
            stack_id=kwargs["StackId"], logical_id=kwargs["LogicalId"], resource_type=kwargs["ResourceType"],
            properties=cloudformation_json["Properties"],
        )  # fmt: skip
        return answered_with(resource, send(resource, "Create", account_id=account_id, region=region_name))

    def update_from_cloudformation_json(  # noqa: PLR0917 (moto's signature)
        cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
        account_id: str, region_name: str,
    ) -> Any:  # fmt: skip
        old = original_resource
        resource = describe(
            CustomModel(region_name, "", old.logical_id, old.resource_name),  # type: ignore[abstract]
            stack_id=old.stack_id, logical_id=old.logical_id, resource_type=old.resource_type,
            properties=cloudformation_json["Properties"],
        )  # fmt: skip
        answered_with(resource, send(resource, "Update", account_id=account_id, region=region_name, old=old))
        if resource.physical_resource_id != old.physical_resource_id:  # replaced: the old one is deleted
            delete(old, account_id, region_name)
        return resource

    def delete(self: Any, account_id: str, region_name: str) -> None:
        from moto.awslambda.exceptions import UnknownFunctionException

        try:
            send(self, "Delete", account_id=account_id, region=region_name)
        except UnknownFunctionException:
            log.warning("%s: its function is already deleted; the Delete request is skipped", self.logical_id)

    def process_cfn_response(self: Any) -> tuple[int, dict[str, int], str]:
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            return 400, {"status": 400}, "the response is not JSON"
        _answered(body if isinstance(body, dict) else {})
        return 200, {"status": 200}, ""

    original_class_of = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        return CustomModel if resource_type == CUSTOM_RESOURCE else original_class_of(resource_type)

    CustomModel.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]
    CustomModel.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment]
    CustomModel.delete = delete  # type: ignore[attr-defined]
    CloudFormationResponse.process_cfn_response = process_cfn_response  # type: ignore[method-assign]
    parsing.resource_class_from_type = resource_class_from_type
