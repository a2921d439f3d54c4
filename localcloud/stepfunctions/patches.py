"""Where moto's Step Functions must behave as AWS does for a deployed state machine to run."""

from __future__ import annotations

import uuid
from typing import Any


def apply() -> None:
    _state_machines_in_the_executing_backend()
    _state_machine_settings_from_cloudformation()
    _unnamed_executions_get_a_uuid()


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
