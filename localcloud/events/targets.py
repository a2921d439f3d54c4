"""EventBridge rule targets as EventBridge delivers to them: the target's input (constant, path or
transformer) sent to SQS, Lambda (asynchronously), SNS or Step Functions, each only as far as
permissions allow: a queue, function or topic by its policy (``events.amazonaws.com`` for the rule),
a state machine by the target's role. A refused delivery is dropped and logged (EventBridge retries,
then drops it or sends it to the target's DLQ).

Runs inside moto's ``PutEvents`` (the server lock is held), so it talks to moto's backends directly.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

TARGET_SERVICES = frozenset({"sqs", "lambda", "sns", "states"})
_ACTIONS = {"sqs": "sqs:SendMessage", "lambda": "lambda:InvokeFunction", "sns": "sns:Publish"}


def _path(document: Any, path: str) -> Any:
    """A JSONPath of the simple form EventBridge input paths use: ``$``, ``$.detail.order.id``."""
    value = document
    for part in [p for p in path.lstrip("$").split(".") if p]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _transform(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """Fill ``<name>`` placeholders: JSON values outside string literals, plain text inside them."""
    values = {name: _path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()}
    values["aws.events.event"] = values["aws.events.event.json"] = event
    template: str = transformer["InputTemplate"]
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        char = template[i]
        if char == '"' and (i == 0 or template[i - 1] != "\\"):
            in_string = not in_string
        end = template.find(">", i) if char == "<" else -1
        if end > 0 and template[i + 1 : end] in values:
            value = values[template[i + 1 : end]]
            out.append(value if in_string and isinstance(value, str) else json.dumps(value))
            i = end + 1
            continue
        out.append(char)
        i += 1
    text = "".join(out)
    try:
        return json.loads(text)
    except ValueError:
        return text


def render_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What the target receives: the constant ``Input``, the ``InputPath``, the transformer's output,
    or the whole event (times as EventBridge writes them)."""
    event = dict(event)
    if isinstance(event.get("time"), int | float):
        event["time"] = datetime.fromtimestamp(float(event["time"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if "Input" in target:
        try:
            return json.loads(target["Input"])
        except ValueError:
            return target["Input"]
    if "InputPath" in target:
        return _path(event, target["InputPath"])
    if target.get("InputTransformer"):
        return _transform(target["InputTransformer"], event)
    return event


def _permitted(rule: Any, target: dict[str, Any], service: str) -> bool:
    from localcloud.iam.enforcement import role_may, service_may

    if service == "states":
        return role_may("events", target.get("RoleArn"), "events", "states:StartExecution", target["Arn"])
    return service_may("events", "events.amazonaws.com", _ACTIONS[service], target["Arn"], rule.arn)


def deliver(rule: Any, target: dict[str, Any], payload: Any) -> None:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    arn: str = target["Arn"]
    service, region, account = arn.split(":")[2:5]
    if not _permitted(rule, target, service):
        return
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        sqs_backends[account][region].send_message(
            queue_name=arn.rsplit(":", maxsplit=1)[-1], message_body=body, group_id=group
        )
    elif service == "lambda":
        from moto.awslambda.models import lambda_backends

        lambda_backends[account][region].get_function(arn).invoke(body, {}, {})  # no headers: asynchronous
    elif service == "sns":
        from moto.sns.models import sns_backends

        sns_backends[account][region].publish(message=body, arn=arn)
    elif service == "states":
        from moto.stepfunctions.responses import get_backend

        get_backend(account, region).start_execution(arn, name=str(uuid.uuid4()), execution_input=body)
