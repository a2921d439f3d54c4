"""The request-reply wire format (the stack and any other client rely on it exactly).

* request, on the request queue: body ``{"action": str, "payload": {...}}`` and the message
  attributes ``reply_to`` (reply queue URL), ``correlation_id`` (uuid4) and ``deadline`` (epoch
  milliseconds after which the caller no longer waits);
* Step Functions variant (``sqs:sendMessage.waitForTaskToken``): body ``{"action", "payload",
  "task_token"}`` and no ``reply_to``; the answer is ``SendTaskSuccess`` / ``SendTaskFailure``;
* reply, on the reply queue: body ``{"correlation_id", "ok": true, "result": {...}}`` or
  ``{"correlation_id", "ok": false, "error": {"type", "message"}}``, and the ``correlation_id``
  message attribute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from asyncstack import contract
from asyncstack.runtime.errors import MalformedJsonError, NonRetryableError, SchemaInvalidError
from asyncstack.runtime.rpc.errors import InvalidRequestError, RemoteError, RpcError, UnanswerableRequestError

__all__ = [
    "ACTION_FIELD",
    "CORRELATION_ID",
    "DEADLINE",
    "ERROR_MESSAGE_LIMIT",
    "PAYLOAD_FIELD",
    "REPLY_TO",
    "TASK_TOKEN_FIELD",
    "RpcRequest",
    "error_reply_body",
    "parse_request",
    "reply_attributes",
    "reply_body",
    "reply_correlation_id",
    "reply_result",
    "request_attributes",
    "request_body",
    "request_deadline",
]

# Message attributes of a request (all three) and of a reply (correlation_id).
REPLY_TO = "reply_to"
CORRELATION_ID = "correlation_id"
DEADLINE = "deadline"
# Fields of a request body.
ACTION_FIELD = contract.RPC_ACTION_FIELD
PAYLOAD_FIELD = contract.RPC_PAYLOAD_FIELD
TASK_TOKEN_FIELD = contract.RPC_TASK_TOKEN_FIELD
ERROR_MESSAGE_LIMIT = 4096  # an error reply's message


@dataclass(frozen=True)
class RpcRequest:
    """One request as the worker sees it: answer by ``task_token`` if set, else to ``reply_to``."""

    action: str
    payload: Mapping[str, Any]
    reply_to: str | None = None
    correlation_id: str | None = None
    deadline: int | None = None  # epoch milliseconds
    task_token: str | None = None
    message_id: str = ""

    @property
    def is_task(self) -> bool:
        return self.task_token is not None

    def expired(self, now: float) -> bool:
        """Whether the caller has given up by ``now`` (epoch seconds)."""
        return self.deadline is not None and now * 1000 > self.deadline

    def log_fields(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "correlation_id": self.correlation_id,
            "message_id": self.message_id,
            "task": self.is_task,
        }


# -- requests ---------------------------------------------------------------------------------


def request_body(action: str, payload: Mapping[str, Any]) -> str:
    """The body of a request; ``ValueError`` if the payload is not JSON."""
    try:
        return json.dumps({ACTION_FIELD: action, PAYLOAD_FIELD: dict(payload)})
    except (TypeError, ValueError) as error:
        raise ValueError(f"payload of {action!r} is not JSON-serialisable: {error}") from error


def request_attributes(reply_to: str, correlation_id: str, deadline_ms: int) -> dict[str, Any]:
    """The message attributes of a request sent to be answered on ``reply_to``."""
    return {
        REPLY_TO: {"DataType": "String", "StringValue": reply_to},
        CORRELATION_ID: {"DataType": "String", "StringValue": correlation_id},
        DEADLINE: {"DataType": "Number", "StringValue": str(deadline_ms)},
    }


def parse_request(record: SQSRecord) -> RpcRequest:
    """The request in an SQS record.

    Raises ``InvalidRequestError`` carrying the (answerable) request when only the body or the
    deadline is wrong, and a ``NonRetryableError`` that is not an ``ActionError`` when the
    request cannot be answered at all.
    """
    body, body_error = _load_body(record.body)
    token = body.get(TASK_TOKEN_FIELD) if body is not None else None
    if token is not None and (not isinstance(token, str) or not token):
        raise UnanswerableRequestError(f"{TASK_TOKEN_FIELD} must be a non-empty string")
    reply_to, correlation_id = _attribute(record, REPLY_TO), _attribute(record, CORRELATION_ID)
    if token is None and not (reply_to and correlation_id):
        if body_error is not None and not (reply_to or correlation_id):
            raise body_error
        missing = (
            "correlation_id" if reply_to else "reply_to" if correlation_id else "reply_to and correlation_id"
        )
        raise UnanswerableRequestError(
            f"no {TASK_TOKEN_FIELD} in the body and no {missing} message attribute"
        )
    deadline, deadline_error = _deadline(record)
    action, payload = (body or {}).get(ACTION_FIELD), (body or {}).get(PAYLOAD_FIELD)
    request = RpcRequest(
        action=action if isinstance(action, str) else "",
        payload=payload if isinstance(payload, dict) else {},
        reply_to=None if token else reply_to,
        correlation_id=None if token else correlation_id,
        deadline=deadline,
        task_token=token,
        message_id=record.message_id,
    )
    problem = str(body_error) if body_error is not None else deadline_error or _body_problem(body or {})
    if problem:
        raise InvalidRequestError(problem, request=request)
    return request


def request_deadline(record: SQSRecord) -> int | None:
    """The request's deadline (epoch milliseconds); None if it has none or it is not a number."""
    return _deadline(record)[0]


def _load_body(raw: str | None) -> tuple[dict[str, Any] | None, NonRetryableError | None]:
    try:
        body = json.loads(raw or "")
    except ValueError as error:
        return None, MalformedJsonError(f"the body is not valid JSON: {error}")
    if not isinstance(body, dict):
        return None, SchemaInvalidError(f"the body must be a JSON object, not {type(body).__name__}")
    return body, None


def _body_problem(body: Mapping[str, Any]) -> str | None:
    if not isinstance(body.get(ACTION_FIELD), str) or not body[ACTION_FIELD]:
        return f"the body needs an {ACTION_FIELD!r} string"
    if PAYLOAD_FIELD in body and not isinstance(body[PAYLOAD_FIELD], dict):
        return f"{PAYLOAD_FIELD!r} must be a JSON object"
    return None


def _attribute(record: SQSRecord, name: str) -> str | None:
    value = (record.raw_event.get("messageAttributes") or {}).get(name) or {}
    return value.get("stringValue") or None


def _deadline(record: SQSRecord) -> tuple[int | None, str | None]:
    raw = _attribute(record, DEADLINE)
    if raw is None:
        return None, None
    try:
        return int(raw), None
    except ValueError:
        return None, f"the deadline attribute must be epoch milliseconds, not {raw!r}"


# -- replies ----------------------------------------------------------------------------------


def reply_body(correlation_id: str, result: Mapping[str, Any]) -> str:
    return json.dumps({"correlation_id": correlation_id, "ok": True, "result": dict(result)})


def error_reply_body(correlation_id: str, error_type: str, message: str) -> str:
    error = {"type": error_type, "message": message[:ERROR_MESSAGE_LIMIT]}
    return json.dumps({"correlation_id": correlation_id, "ok": False, "error": error})


def reply_attributes(correlation_id: str) -> dict[str, Any]:
    return {CORRELATION_ID: {"DataType": "String", "StringValue": correlation_id}}


def reply_correlation_id(message: Mapping[str, Any]) -> str | None:
    """The correlation id of a received reply: its attribute, or the body's field."""
    attribute = (message.get("MessageAttributes") or {}).get(CORRELATION_ID) or {}
    if attribute.get("StringValue"):
        return str(attribute["StringValue"])
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return None
    return str(body["correlation_id"]) if isinstance(body, dict) and "correlation_id" in body else None


def reply_result(message: Mapping[str, Any], action: str, correlation_id: str) -> dict[str, Any]:
    """The result in a received reply; ``RemoteError`` for an error reply, ``RpcError`` if it is malformed."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError as error:
        raise RpcError(f"the reply to {action!r} ({correlation_id}) is not JSON: {error}") from error
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        raise RpcError(f"the reply to {action!r} ({correlation_id}) has no boolean 'ok'")
    if body["ok"]:
        result = body.get("result")
        if not isinstance(result, dict):
            raise RpcError(f"the reply to {action!r} ({correlation_id}) has no result object")
        return result
    details = body.get("error")
    if not isinstance(details, dict):
        details = {}
    raise RemoteError(
        action, str(details.get("type") or "Unknown"), str(details.get("message") or ""), correlation_id
    )
