"""Where moto's Step Functions must behave as AWS does for a deployed state machine to run."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any


def apply() -> None:
    _state_machines_in_the_executing_backend()
    _state_machine_settings_from_cloudformation()
    _unnamed_executions_get_a_uuid()
    _nested_executions_speak_step_functions_shapes()
    _sdk_integrations_answer_dates_as_text()
    _tasks_call_as_the_state_machines_role()


def _state_machines_in_the_executing_backend() -> None:
    """With execution on, moto serves the Step Functions API from its interpreter's backend but
    creates CloudFormation state machines in the other one; one backend, as in AWS."""
    from moto.stepfunctions import models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    models.stepfunctions_backends = stepfunctions_parser_backends  # type: ignore[assignment]


def _state_machine_settings_from_cloudformation() -> None:
    """moto's CloudFormation creates every state machine as a Standard one without logging or
    tracing; AWS applies ``StateMachineType``, ``LoggingConfiguration`` and ``TracingConfiguration``."""
    from moto.stepfunctions.models import StateMachine

    def settings(properties: dict[str, Any]) -> dict[str, Any]:
        logging_ = properties.get("LoggingConfiguration") or {}
        return {
            "type": properties.get("StateMachineType", "STANDARD"),
            "loggingConfiguration": {
                "level": logging_.get("Level", "OFF"),
                "includeExecutionData": bool(logging_.get("IncludeExecutionData", False)),
                "destinations": [
                    {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
                    for d in logging_.get("Destinations", [])
                    if "CloudWatchLogsLogGroup" in d
                ],
            },
            "tracingConfiguration": {
                "enabled": bool((properties.get("TracingConfiguration") or {}).get("Enabled"))
            },
        }

    def applied(machine: Any, cloudformation_json: dict[str, Any]) -> Any:
        for name, value in settings(cloudformation_json.get("Properties") or {}).items():
            setattr(machine, name, value)
        machine.sm_type = machine.type
        return machine

    create = StateMachine.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    update = StateMachine.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return applied(create(cls, name, cloudformation_json, *args, **kwargs), cloudformation_json)

    def update_from_cloudformation_json(
        cls: Any, original: Any, name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return applied(update(cls, original, name, cloudformation_json, *args, **kwargs), cloudformation_json)

    StateMachine.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment,method-assign]
    StateMachine.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment,method-assign]


def _unnamed_executions_get_a_uuid() -> None:
    """StartExecution without a name: AWS names the execution with a UUID; moto's interpreter names
    it "None", so a second unnamed execution of the same state machine is refused as a duplicate."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


@functools.cache
def _stepfunctions_operation(name: str) -> Any:
    """botocore's model of a Step Functions API operation (``StartExecution``)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("stepfunctions").operation_model(name)


def _in_task_output_form(value: Any, shape: Any) -> Any:
    """An API answer as a Step Functions task returns it: the members of its structures PascalCase,
    dates in epoch milliseconds. Only the answer's own structures: an execution's input and output
    (JSON objects in ``.sync:2``) are the user's data and keep their keys."""
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            key[:1].upper() + key[1:]: _in_task_output_form(item, members[key]) if key in members else item
            for key, item in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_in_task_output_form(item, shape.member) for item in value]
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return value


def _nested_executions_speak_step_functions_shapes() -> None:
    """``arn:aws:states:::states:startExecution`` (plain, ``.sync``, ``.sync:2``, ``.waitForTaskToken``):
    the state's parameters are PascalCase (``StateMachineArn``, ``Input``, ``Name``) and its output is
    PascalCase with dates in epoch milliseconds (``ExecutionArn``, ``StartDate``; the child's
    ``DescribeExecution`` for the ``.sync`` forms). moto's interpreter handed the parameters to boto3's
    camelCase API as they were (``KeyError: 'StateMachineArn'``) and left the answer in boto3's form."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    stringify_input = StateTaskServiceSfn._normalise_parameters

    def _normalise_parameters(
        self: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        stringify_input(self, parameters, boto_service_name, service_action_name)  # Input as a JSON string
        action = self.resource.api_action
        members = {
            m.lower(): m
            for m in _stepfunctions_operation(action[:1].upper() + action[1:]).input_shape.members
        }
        for key in list(parameters):
            name = members.get(key.lower(), key)
            if name != key:
                parameters[name] = parameters.pop(key)

    def _normalise_response(
        self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        if isinstance(response, dict):  # in place: the interpreter keeps the object it passed
            action = service_action_name or self._get_boto_service_action()  # describe_execution
            operation = "".join(part.capitalize() for part in action.split("_"))
            converted = _in_task_output_form(response, _stepfunctions_operation(operation).output_shape)
            response.clear()
            response.update(converted)

    StateTaskServiceSfn._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = _normalise_response  # type: ignore[method-assign]


def _as_text_dates(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_text_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_text_dates(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def _sdk_integrations_answer_dates_as_text() -> None:
    """An ``aws-sdk:*`` task returns the API's timestamps as ISO 8601 text ("2013-08-23T01:02:15.422Z");
    moto kept boto3's datetimes in the state's output, and then failed to describe the execution (500)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    call = StateTaskServiceAwsSdk._eval_service_task

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        call(self, env, *args, **kwargs)
        env.stack[-1] = _as_text_dates(env.stack[-1])

    StateTaskServiceAwsSdk._eval_service_task = eval_service_task  # type: ignore[method-assign]


def _tasks_call_as_the_state_machines_role() -> None:
    """Step Functions calls a task's service as the state machine's role (or the task's
    ``Credentials.RoleArn``); moto's interpreter called with a key of its own, allowed everything."""
    import sys

    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    from localcloud.iam.enforcement import role_credentials
    from localcloud.server import DUMMY_CREDENTIALS

    original = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role = getattr(state_credentials, "role_arn", None)
        keys = (role_credentials(role, "StepFunctions") if role else None) or DUMMY_CREDENTIALS
        # moto's in-process mock intercepts the calls itself; a server is called at its port
        endpoint = None if botocore_stubber.enabled else f"http://localhost:{moto_server_port()}"
        return boto3.client(  # type: ignore[call-overload]
            service, region_name=region, endpoint_url=endpoint,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=keys.get("AWS_SESSION_TOKEN"),
            config=Config(
                parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS, read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )  # fmt: skip

    boto_client.boto_client_for = boto_client_for
    for name, module in list(sys.modules.items()):  # the interpreter's modules that imported it by name
        if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
