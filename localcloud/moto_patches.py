"""The few places where moto must behave differently for a deployed template to run locally.

Each patch is small and says which AWS behaviour it restores. ``apply`` is idempotent and must
run before moto builds its CloudFormation model map (first stack operation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

# Called for every Lambda invocation moto receives, whatever the path (Invoke API, Step Functions
# tasks, SNS, EventBridge): (function model, event body, invocation type, request id)
# -> (payload, error type).
Invoker = Callable[[Any, str, str, str], tuple[bytes, str | None]]

_state: dict[str, Any] = {"applied": False, "invoker": None, "clock": None}


def set_invoker(invoker: Invoker | None) -> None:
    _state["invoker"] = invoker


def set_clock(clock: Any) -> None:
    """The local cloud's clock (``localcloud.clock.Clock``), or None for real time."""
    _state["clock"] = clock


def apply(port: int) -> None:
    """Configure moto for the local cloud on ``port`` and install the patches (once per process)."""
    from moto.core.config import default_user_config

    # Step Functions' interpreter calls other services (Lambda) through this port.
    os.environ["MOTO_PORT"] = str(port)
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    # Kept on: with it off, moto swaps in a Lambda backend that answers every invoke with canned
    # text. Docker itself is never reached, because ``invoke`` below replaces the only caller.
    default_user_config["lambda"]["use_docker"] = True
    if _state["applied"]:
        return
    _state["applied"] = True

    import localcloud.cfn_types

    localcloud.cfn_types.register()
    # Types moto cannot create are listed by `status` (unsupported_resources) instead.
    logging.getLogger("moto").addFilter(
        lambda record: not record.getMessage().startswith("No Moto CloudFormation")
    )
    warnings.filterwarnings("ignore", message="Tried to parse .* not supported")
    _template_urls_on_any_endpoint()
    _change_sets_update_the_stack_template()
    _depends_on_is_honoured()
    _previous_ssm_parameter_values()
    _state_machines_in_the_executing_backend()
    _state_machine_settings_from_cloudformation()
    _unnamed_executions_get_a_uuid()
    _sns_events_for_lambda()
    _eventbridge_targets()
    _lambda_cloudformation_properties()
    _fifo_queue_names()
    _no_synchronous_sqs_trigger()
    _sqs_follows_the_clock()
    _cheap_retention_check()
    _sqs_scales_with_queue_depth()
    _transactions_back_up_only_their_items()
    _invocations_through_the_runtime()


def _template_urls_on_any_endpoint() -> None:
    """The CDK CLI passes template URLs on the local endpoint (``http://127.0.0.1:4566/bucket/key``);
    moto only reads path-style URLs from ``localhost`` or ``s3.amazonaws.com``."""
    from moto.cloudformation import responses, utils

    original = utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        parsed = urlparse(template_url)
        if parsed.hostname in ("127.0.0.1", "localhost", "::1"):
            template_url = f"http://localhost{parsed.path}"
        return original(template_url, account_id=account_id, partition=partition)

    utils.get_stack_from_s3_url = get_stack_from_s3_url
    responses.get_stack_from_s3_url = get_stack_from_s3_url


def _change_sets_update_the_stack_template() -> None:
    """How the CDK CLI deploys, done as CloudFormation does it: ``ExecuteChangeSet`` replaces the
    stack's template (moto kept the old one: no outputs, updates diffed against nothing) and then
    removes the stack's change sets; a change set that does not exist is ``ChangeSetNotFound``
    (moto's ``ValidationError`` keeps the CLI waiting forever for a deletion on redeploy)."""
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

    original_execute = CloudFormationBackend.execute_change_set

    def find(self: Any, change_set_name: str) -> Any:
        if change_set_name in self.change_sets:  # an ARN
            return self.change_sets[change_set_name]
        for change_set in self.change_sets.values():
            if change_set.change_set_name == change_set_name:
                return change_set
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")

    def delete_change_set(self: Any, change_set_name: str) -> None:
        with contextlib.suppress(ChangeSetNotFound):  # deleting what is gone succeeds, as in CloudFormation
            del self.change_sets[find(self, change_set_name).change_set_id]

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = find(self, change_set_name)
        stack = self.stacks[change_set.stack_id]
        try:
            original_execute(self, change_set_name, stack_name)
        except Exception as error:  # recorded as CloudFormation does, so the deploy's failure has a reason
            stack._add_stack_event(f"{change_set.change_set_type}_FAILED", resource_status_reason=repr(error))
            stack.status = (
                "ROLLBACK_COMPLETE" if change_set.change_set_type == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            )
            raise
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        for key in [k for k, c in self.change_sets.items() if c.stack_id == stack.stack_id]:
            del self.change_sets[key]

    CloudFormationBackend.describe_change_set = find  # type: ignore[method-assign]
    CloudFormationBackend.delete_change_set = delete_change_set  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]


def _previous_ssm_parameter_values() -> None:
    """On update the CDK CLI passes ``UsePreviousValue`` for the bootstrap version parameter (an SSM
    parameter type); moto hands the previously resolved value back as if it were the SSM path."""
    from moto.cloudformation.parsing import ResourceMap
    from moto.ssm.models import ssm_backends

    original = ResourceMap.parse_ssm_parameter

    def parse_ssm_parameter(self: Any, value: str, value_type: str) -> Any:
        if (
            not str(value).startswith("/")
            and ssm_backends[self._account_id][self._region_name].get_parameter(value) is None
        ):
            return value  # already resolved
        return original(self, value, value_type)

    ResourceMap.parse_ssm_parameter = parse_ssm_parameter  # type: ignore[method-assign]


def _depends_on_is_honoured() -> None:
    """CloudFormation creates a resource's ``DependsOn`` first; moto's change sets create in template
    order (a CDK RestApi's Deployment before its Methods fails)."""
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.__getitem__

    def getitem(self: Any, key: str) -> Any:
        if key not in self._parsed_resources:
            depends_on = (self._resource_json_map.get(key) or {}).get("DependsOn") or []
            for dependency in [depends_on] if isinstance(depends_on, str) else depends_on:
                getitem(self, dependency)
        return original(self, key)

    ResourceMap.__getitem__ = getitem  # type: ignore[method-assign]


def _state_machines_in_the_executing_backend() -> None:
    """With execution on, moto serves the Step Functions API from its interpreter's backend but
    creates CloudFormation state machines in the other one; one backend, as in AWS."""
    from moto.stepfunctions import models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    models.stepfunctions_backends = stepfunctions_parser_backends  # type: ignore[assignment]


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


def _sns_events_for_lambda() -> None:
    """moto sends subscribed functions a canned SNS event (topic ``arn:aws:sns:EXAMPLE``, fixed
    message id, made-up attributes); SNS sends the real notification, asynchronously."""
    from moto.awslambda.models import lambda_backends
    from moto.core.utils import iso_8601_datetime_with_milliseconds
    from moto.sns.models import Subscription

    original = Subscription.publish

    def publish(self: Any, message: str, message_id: str, subject: str | None = None,
                message_attributes: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:  # fmt: skip
        if self.protocol != "lambda":
            return original(self, message, message_id, subject, message_attributes, *args, **kwargs)
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            message_attributes, message
        ):
            return None
        if kwargs.get("message_structure", args[2] if len(args) > 2 else None) == "json":
            message = self._parse_message_structure(message, self.protocol)
        notification = {
            "Type": "Notification", "MessageId": message_id, "TopicArn": self.topic.arn, "Subject": subject,
            "Message": message, "Timestamp": iso_8601_datetime_with_milliseconds(), "SignatureVersion": "1",
            "Signature": "local", "SigningCertUrl": "", "UnsubscribeUrl": "",
            "MessageAttributes": {name: {"Type": v["Type"], "Value": v["Value"]} for name, v in (message_attributes or {}).items()},
        }  # fmt: skip
        event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": self.arn, "Sns": notification}]}  # fmt: skip
        region = self.endpoint.split(":")[3]
        function = lambda_backends[self.account_id][region].get_function(self.endpoint)
        function.invoke(json.dumps(event), {}, {})
        return None

    Subscription.publish = publish  # type: ignore[method-assign]


def _eventbridge_targets() -> None:
    """moto's rules deliver only to SQS, logs and buses, ignore ``Input``/``InputPath``, leave string
    values unquoted in input transformers and omit the event's ``account``. EventBridge delivers to
    Lambda (asynchronously), SNS and Step Functions too, with the target's input."""
    from moto.events.models import Rule

    from localcloud.event_targets import TARGET_SERVICES, deliver, render_input

    original = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        event = {"account": self.account_id, **original_event}
        if not self.event_pattern.matches_event(event):
            return
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in TARGET_SERVICES]
        for target in ours:
            deliver(self, target, render_input(target, event) if transform_input else event)
        rest = [t for t in self.targets if t not in ours]
        if rest:
            saved, self.targets = self.targets, rest
            try:
                original(self, event, transform_input)  # type: ignore[arg-type]
            finally:
                self.targets = saved

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]


def _lambda_cloudformation_properties() -> None:
    """moto's ``AWS::Lambda::Function`` drops ``Layers`` and ``LoggingConfig``; Lambda honours both."""
    from moto.awslambda.models import LambdaFunction

    create = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    update = LambdaFunction.update_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def apply_extras(function: Any, properties: dict[str, Any]) -> Any:
        # moto resolves a Ref to a layer declared in the same stack to the model object, not its ARN.
        arns = [getattr(layer, "arn", layer) for layer in properties.get("Layers", [])]
        function.layers = function._get_layers_data(arns)
        function.log_group_override = (properties.get("LoggingConfig") or {}).get("LogGroup")
        function.dead_letter_target = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
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


def _fifo_queue_names() -> None:
    """CloudFormation names an unnamed FIFO queue with the ``.fifo`` suffix SQS requires; moto does not."""
    from moto.sqs.models import Queue

    create = Queue.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        properties = cloudformation_json.get("Properties") or {}
        if str(properties.get("FifoQueue")).lower() == "true" and not properties.get("QueueName"):
            resource_name = resource_name[:75] + ".fifo"
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Queue.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]


def _no_synchronous_sqs_trigger() -> None:
    """moto invokes the function inside ``SendMessage`` and ignores batching, concurrency and
    partial batch responses; the local runtime polls event source mappings itself, like Lambda."""
    from moto.sqs.models import Queue

    Queue.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: {}, lambda self, value: None
    )


def _sqs_follows_the_clock() -> None:
    """SQS reads the local cloud's clock, as the scheduler does: advancing it expires visibility
    timeouts and delays at once, so a test or chaos run need not wait out a 3-minute timeout."""
    from moto.sqs import models

    real_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        clock = _state["clock"]
        if dt is not None or clock is None:
            return float(real_unix_time(dt))
        return float(clock.timestamp())

    models.unix_time = unix_time
    models.unix_time_millis = lambda dt=None: unix_time(dt) * 1000.0


def _cheap_retention_check() -> None:
    """moto checks each received message's retention by building every queue attribute (three scans
    of the queue); reading the one attribute keeps ReceiveMessage from slowing as a queue grows."""
    from moto.sqs import models

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > models.unix_time())

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def _sqs_scales_with_queue_depth() -> None:
    """moto's SQS slows down as a queue fills: a send builds every queue attribute (three counts over
    all messages) to read one flag, a delete scans the messages twice, and listing the visible
    messages reads the clock twice per message. With 10,000 messages waiting that made draining a
    queue quadratic; these do the same work in one pass, with one reading of the clock."""
    import threading

    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    sending = threading.local()
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        # Inside a send the attributes are built only for ContentBasedDeduplication: skip the counts.
        setattr(models.Queue, name, property(_unless(sending, getattr(models.Queue, name).fget)))

    send_message = models.SQSBackend.send_message

    def send_without_counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sending.on = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            sending.on = False

    def messages(self: Any) -> list[Any]:
        now = models.unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleting twice succeeds, as in SQS
        for index, message in enumerate(self._messages):
            if message.had_receipt_handle(receipt_handle):
                del self._messages[index]
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                return
        raise ReceiptHandleIsInvalid()

    models.SQSBackend.send_message = send_without_counting  # type: ignore[method-assign]
    models.Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    models.Queue.delete_message = delete_message  # type: ignore[method-assign]


def _transactions_back_up_only_their_items() -> None:
    """moto backs up every table a TransactWriteItems names (a deep copy of the whole table) to roll
    it back if the transaction is cancelled, so a transaction costs as much as its tables are big.
    The rollback stays, but only the items the transaction touches are backed up and restored."""
    import copy
    import types

    from moto.dynamodb import models

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, models.Table) else copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
        """(table, key, the item's attributes or None) for every item the transaction names."""
        found = []
        for entry in transact_items:
            op: dict[str, Any] = next(iter(entry.values()), {})
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
            key = op.get("Key") or {n: op.get("Item", {}).get(n) for n in names}
            with contextlib.suppress(Exception):  # malformed: moto refuses it before writing anything
                item = backend.get_item(table.name, key)
                found.append((table.name, key, item.to_json()["Attributes"] if item else None))
        return found

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = touched(self, transact_items)
        try:
            transact(self, transact_items)
        except Exception:
            for table, key, attributes in reversed(before):
                if attributes is not None:
                    self.put_item(table, attributes)
                elif self.get_item(table, key) is not None:
                    self.delete_item(table, key)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _unless(sending: Any, count: Callable[[Any], int]) -> Callable[[Any], int]:
    def counted(queue: Any) -> int:
        return 0 if getattr(sending, "on", False) else count(queue)

    return counted


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
