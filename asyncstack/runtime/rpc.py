"""Request-reply (async RPC) over SQS, and its Step Functions task-token variant.

Why queues for a call: the caller gets back pressure, retries and a dead-letter queue for free,
and the worker scales with the request queue like every other worker in this stack.

The contract (the stack and any other client rely on it exactly):

* request, on the request queue: body ``{"action": str, "payload": {...}}`` and the message
  attributes ``reply_to`` (reply queue URL), ``correlation_id`` (uuid4) and ``deadline`` (epoch
  milliseconds after which the caller no longer waits);
* Step Functions variant (``sqs:sendMessage.waitForTaskToken``): body ``{"action", "payload",
  "task_token"}`` and no ``reply_to``; the answer is ``SendTaskSuccess`` / ``SendTaskFailure``;
* reply, on the reply queue: body ``{"correlation_id", "ok": true, "result": {...}}`` or
  ``{"correlation_id", "ok": false, "error": {"type", "message"}}``, and the ``correlation_id``
  message attribute.

Server rules: a request is answered exactly when it can be. Business errors (``ActionError``)
become an error reply and the record succeeds; a request that cannot be answered (no address,
bad JSON without an address, a ``reply_to`` outside ``RPC_REPLY_QUEUE_URLS``) goes to the
dead-letter queue at once with the reason, like ``asyncstack.runtime.consumer`` poison pills; a request past
its deadline is dropped unworked; anything else is transient and retried with backoff. Close
to the function's own timeout, records not yet started are released for another invocation.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.consumer import backoff_seconds, dead_letter, release, retry_later
from asyncstack.runtime.errors import (
    DeadlineReachedError,
    MalformedJsonError,
    NonRetryableError,
    SchemaInvalidError,
)
from asyncstack.runtime.observability import logger, metrics
from asyncstack.runtime.settings import ConsumerSettings, consumer_settings

__all__ = [
    "CORRELATION_ID",
    "DEADLINE",
    "DEFAULT_TIMEOUT",
    "MAX_WAIT_SECONDS",
    "REPLY_QUEUES_ENV",
    "REPLY_TO",
    "Action",
    "ActionError",
    "Heartbeat",
    "InvalidRequestError",
    "InvalidTaskTokenError",
    "RemoteError",
    "ReplyToRefusedError",
    "RpcClient",
    "RpcError",
    "RpcRequest",
    "RpcServer",
    "RpcTimeout",
    "TaskGoneError",
    "UnanswerableRequestError",
    "UnknownActionError",
    "allowed_reply_queues",
    "call",
    "check_reply_to",
    "heartbeat",
    "parse_request",
    "reply",
    "reply_error",
]

REPLY_TO = "reply_to"
CORRELATION_ID = "correlation_id"
DEADLINE = "deadline"
REPLY_QUEUES_ENV = contract.RPC_REPLY_QUEUE_URLS

DEFAULT_TIMEOUT = 10.0
MAX_WAIT_SECONDS = 20  # the SQS long-poll maximum
# A long poll holds the HTTP response open: the read timeout must outlast it (asyncstack.runtime.aws uses 10 s).
_LONG_POLL_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=MAX_WAIT_SECONDS + 10
)

_ERROR_MESSAGE_LIMIT = 4096
_SFN_ERROR_LIMIT = 256  # SendTaskFailure limits
_SFN_CAUSE_LIMIT = 32_768
_TASK_GONE_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist"})

Heartbeat = Callable[[], None]
Action = Callable[[Mapping[str, Any], Heartbeat], Mapping[str, Any]]


# -- errors ---------------------------------------------------------------------------------


class RpcError(Exception):
    """Base of what ``RpcClient.call`` raises besides bad arguments (``ValueError``)."""


class RpcTimeout(RpcError, TimeoutError):
    """No reply arrived in time; the request may still be processed later (its reply is dropped)."""

    def __init__(self, action: str, timeout: float, correlation_id: str, request_queue_url: str) -> None:
        super().__init__(
            f"no reply to {action!r} within {timeout:g} s (correlation_id {correlation_id}, "
            f"request queue {request_queue_url})"
        )
        self.action = action
        self.timeout = timeout
        self.correlation_id = correlation_id
        self.request_queue_url = request_queue_url


class RemoteError(RpcError):
    """The worker answered with an error: ``error_type`` is its type (e.g. ``InvalidImage``)."""

    def __init__(self, action: str, error_type: str, message: str, correlation_id: str) -> None:
        super().__init__(f"{action!r} failed remotely: {error_type}: {message}")
        self.action = action
        self.error_type = error_type
        self.remote_message = message
        self.correlation_id = correlation_id


class ActionError(NonRetryableError):
    """A business error: retrying cannot help, so the caller gets an error reply of ``error_type``."""

    error_type = "ActionError"


class InvalidRequestError(ActionError):
    """The request or its payload is invalid; ``request`` is set when the parser could read an address."""

    error_type = "InvalidRequest"

    def __init__(self, message: str, request: RpcRequest | None = None) -> None:
        super().__init__(message)
        self.request = request


class UnknownActionError(ActionError):
    error_type = "UnknownAction"


class UnanswerableRequestError(NonRetryableError):
    """No ``task_token`` and no ``reply_to`` + ``correlation_id``: nobody can be told, so dead-letter it."""

    error_type = "Unanswerable"


class ReplyToRefusedError(NonRetryableError):
    """``reply_to`` is not an allowed reply queue: answering would let a caller make us write anywhere."""

    error_type = "ReplyToRefused"


class InvalidTaskTokenError(NonRetryableError):
    error_type = "InvalidTaskToken"


class TaskGoneError(Exception):
    """The Step Functions task timed out or no longer exists: nobody waits for this answer."""


# -- client ---------------------------------------------------------------------------------


def _long_poll_sqs() -> Any:
    return boto3.session.Session().client("sqs", config=_LONG_POLL_CONFIG)


class RpcClient:
    """Calls actions on a worker through ``request_queue_url`` and waits on ``reply_queue_url``.

    One client owns its reply queue: it deletes every message it receives there and keeps only
    the reply to the call in progress, so two clients (or two concurrent calls) must not share a
    reply queue. Late replies to earlier calls that timed out are dropped the same way.
    """

    def __init__(
        self,
        request_queue_url: str,
        reply_queue_url: str,
        *,
        sqs: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.request_queue_url = request_queue_url
        self.reply_queue_url = reply_queue_url
        self._sqs = sqs
        self._clock = clock

    @property
    def sqs(self) -> Any:
        """Created on first call, with a read timeout longer than the longest poll."""
        if self._sqs is None:
            self._sqs = _long_poll_sqs()
        return self._sqs

    def call(
        self, action: str, payload: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send ``action`` and wait up to ``timeout`` seconds for its result.

        Raises ``RemoteError`` when the worker answers with an error, ``RpcTimeout`` without an
        answer in time. SQS long polls last whole seconds, so a timeout can overrun by under 1 s.
        """
        if not action or not isinstance(action, str):
            raise ValueError("action must be a non-empty string")
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a mapping, not {type(payload).__name__}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        try:
            body = json.dumps({"action": action, "payload": dict(payload)})
        except (TypeError, ValueError) as error:
            raise ValueError(f"payload of {action!r} is not JSON-serialisable: {error}") from error
        correlation_id = str(uuid.uuid4())
        until = self._clock() + timeout
        self.sqs.send_message(
            QueueUrl=self.request_queue_url,
            MessageBody=body,
            MessageAttributes={
                REPLY_TO: {"DataType": "String", "StringValue": self.reply_queue_url},
                CORRELATION_ID: {"DataType": "String", "StringValue": correlation_id},
                DEADLINE: {"DataType": "Number", "StringValue": str(math.ceil(until * 1000))},
            },
        )
        reply = self._wait_for(correlation_id, until)
        if reply is None:
            raise RpcTimeout(action, timeout, correlation_id, self.request_queue_url)
        return _result(reply, action, correlation_id)

    def _wait_for(self, correlation_id: str, until: float) -> Mapping[str, Any] | None:
        """Long-poll until our reply arrives or time is up; every other reply is deleted and dropped."""
        while (remaining := until - self._clock()) > 0:
            messages = self.sqs.receive_message(
                QueueUrl=self.reply_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=min(MAX_WAIT_SECONDS, math.ceil(remaining)),
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            self._delete(messages)
            found: Mapping[str, Any] | None = None
            for message in messages:
                reply_id = _reply_correlation_id(message)
                if reply_id == correlation_id and found is None:
                    found = message
                else:
                    logger.info(
                        "dropped a reply that is not for the call in progress (late or foreign)",
                        extra={"reply_correlation_id": reply_id, "correlation_id": correlation_id},
                    )
            if found is not None:
                return found
        return None

    def _delete(self, messages: list[Mapping[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        failed = self.sqs.delete_message_batch(QueueUrl=self.reply_queue_url, Entries=entries).get(
            "Failed", []
        )
        if failed:  # they come back after the visibility timeout and are dropped then
            logger.warning("could not delete replies", extra={"failed": failed})


def call(
    action: str,
    payload: Mapping[str, Any],
    *,
    request_queue_url: str,
    reply_queue_url: str,
    timeout: float = DEFAULT_TIMEOUT,
    sqs: Any = None,
) -> dict[str, Any]:
    """One call with a throwaway client; keep an ``RpcClient`` around to call repeatedly."""
    return RpcClient(request_queue_url, reply_queue_url, sqs=sqs).call(action, payload, timeout)


def _reply_correlation_id(message: Mapping[str, Any]) -> str | None:
    attribute = (message.get("MessageAttributes") or {}).get(CORRELATION_ID) or {}
    if attribute.get("StringValue"):
        return str(attribute["StringValue"])
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return None
    return str(body["correlation_id"]) if isinstance(body, dict) and "correlation_id" in body else None


def _result(message: Mapping[str, Any], action: str, correlation_id: str) -> dict[str, Any]:
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


# -- server: requests and replies -----------------------------------------------------------


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


def parse_request(record: SQSRecord) -> RpcRequest:
    """The request in an SQS record.

    Raises ``InvalidRequestError`` carrying the (answerable) request when only the body or the
    deadline is wrong, and a ``NonRetryableError`` that is not an ``ActionError`` when the
    request cannot be answered at all.
    """
    body, body_error = _load_body(record.body)
    token = body.get("task_token") if body is not None else None
    if token is not None and (not isinstance(token, str) or not token):
        raise UnanswerableRequestError("task_token must be a non-empty string")
    reply_to, correlation_id = _attribute(record, REPLY_TO), _attribute(record, CORRELATION_ID)
    if token is None and not (reply_to and correlation_id):
        if body_error is not None and not (reply_to or correlation_id):
            raise body_error
        missing = (
            "correlation_id" if reply_to else "reply_to" if correlation_id else "reply_to and correlation_id"
        )
        raise UnanswerableRequestError(f"no task_token in the body and no {missing} message attribute")
    deadline, deadline_error = _deadline(record)
    action, payload = (body or {}).get("action"), (body or {}).get("payload")
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


def _load_body(raw: str | None) -> tuple[dict[str, Any] | None, NonRetryableError | None]:
    try:
        body = json.loads(raw or "")
    except ValueError as error:
        return None, MalformedJsonError(f"the body is not valid JSON: {error}")
    if not isinstance(body, dict):
        return None, SchemaInvalidError(f"the body must be a JSON object, not {type(body).__name__}")
    return body, None


def _body_problem(body: Mapping[str, Any]) -> str | None:
    if not isinstance(body.get("action"), str) or not body["action"]:
        return "the body needs an 'action' string"
    if "payload" in body and not isinstance(body["payload"], dict):
        return "'payload' must be a JSON object"
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


def allowed_reply_queues() -> frozenset[str]:
    """The reply queue URLs this worker may send to, from ``RPC_REPLY_QUEUE_URLS`` (comma-separated)."""
    return frozenset(url.strip() for url in os.environ.get(REPLY_QUEUES_ENV, "").split(",") if url.strip())


def check_reply_to(request: RpcRequest, allowed: frozenset[str]) -> None:
    """Refuse a ``reply_to`` outside the allowed queues (the URL must match exactly)."""
    if request.is_task or request.reply_to in allowed:
        return
    raise ReplyToRefusedError(
        f"reply_to {request.reply_to} is not an allowed reply queue ({REPLY_QUEUES_ENV}); not answering"
    )


def reply(
    request: RpcRequest, result: Mapping[str, Any], *, sqs: Any = None, stepfunctions: Any = None
) -> None:
    """Answer with a result: ``SendTaskSuccess`` for a task token, else a reply on ``reply_to``."""
    if request.task_token is not None:
        _task_call(
            stepfunctions or aws.client("stepfunctions"),
            "send_task_success",
            taskToken=request.task_token,
            output=json.dumps(dict(result)),
        )
        return
    _send_reply(sqs, request, {"correlation_id": request.correlation_id, "ok": True, "result": dict(result)})


def reply_error(
    request: RpcRequest, error_type: str, message: str, *, sqs: Any = None, stepfunctions: Any = None
) -> None:
    """Answer with an error: ``SendTaskFailure(error=type, cause=message)`` or an error reply."""
    if request.task_token is not None:
        _task_call(
            stepfunctions or aws.client("stepfunctions"),
            "send_task_failure",
            taskToken=request.task_token,
            error=error_type[:_SFN_ERROR_LIMIT],
            cause=message[:_SFN_CAUSE_LIMIT],
        )
        return
    error = {"type": error_type, "message": message[:_ERROR_MESSAGE_LIMIT]}
    _send_reply(sqs, request, {"correlation_id": request.correlation_id, "ok": False, "error": error})


def heartbeat(request: RpcRequest, *, stepfunctions: Any = None) -> None:
    """Tell Step Functions the task is alive (``HeartbeatSeconds``); nothing for queue replies.

    Best effort, except that a task which is gone stops the work (``TaskGoneError``).
    """
    if request.task_token is None:
        return
    try:
        _task_call(
            stepfunctions or aws.client("stepfunctions"), "send_task_heartbeat", taskToken=request.task_token
        )
    except (ClientError, BotoCoreError):
        logger.warning("task heartbeat failed; carrying on", extra=request.log_fields(), exc_info=True)


def _task_call(stepfunctions: Any, operation: str, **kwargs: Any) -> None:
    try:
        getattr(stepfunctions, operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _TASK_GONE_CODES:
            raise TaskGoneError(f"{operation}: the task is gone ({code})") from error
        if code == "InvalidToken":
            raise InvalidTaskTokenError(f"{operation}: Step Functions refused the task token") from error
        raise


def _send_reply(sqs: Any, request: RpcRequest, body: Mapping[str, Any]) -> None:
    if not request.reply_to or not request.correlation_id:
        raise UnanswerableRequestError("the request has no reply_to and correlation_id to answer")
    (sqs or aws.client("sqs")).send_message(
        QueueUrl=request.reply_to,
        MessageBody=json.dumps(body),
        MessageAttributes={CORRELATION_ID: {"DataType": "String", "StringValue": request.correlation_id}},
    )


# -- server: the batch handler --------------------------------------------------------------


@dataclass
class RpcServer:
    """Answers RPC requests from an SQS batch with the handler in ``actions`` for each action.

    Uses ``QUEUE_URL`` and ``DEAD_LETTER_QUEUE_URL`` (``ConsumerSettings``) for retry backoff and
    dead-lettering, and ``RPC_REPLY_QUEUE_URLS`` for the reply queues it may write to.
    """

    actions: Mapping[str, Action]
    sqs: Any = None
    stepfunctions: Any = None
    settings_factory: Callable[[], ConsumerSettings] = consumer_settings
    reply_queues: Callable[[], frozenset[str]] = allowed_reply_queues
    clock: Callable[[], float] = time.time

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = self.settings_factory()
        allowed = self.reply_queues()
        untouched: list[SQSRecord] = []

        def record_handler(record: SQSRecord) -> Mapping[str, Any]:
            if context.get_remaining_time_in_millis() < settings.shutdown_margin_ms:
                untouched.append(record)  # as in asyncstack.runtime.consumer: released below, retried at once
                raise DeadlineReachedError("stopped before the function deadline; will be retried")
            try:
                return self._serve(record, allowed)
            except TaskGoneError as error:
                logger.info("the Step Functions task is gone; dropped", extra={"message_id": record.message_id,
                            "reason": str(error)})  # fmt: skip
                metrics.add_metric(name="RpcRequestsDropped", unit=MetricUnit.Count, value=1)
                return {"dropped": "TaskGone"}
            except NonRetryableError as error:  # cannot be answered: ActionErrors were answered in _serve
                dead_letter(self._sqs, record, error, settings)
                return {"dead_lettered": error.error_type}
            except Exception as error:
                self._back_off(record, error, settings)
                raise

        processor = BatchProcessor(EventType.SQS)
        processor.raise_on_entire_batch_failure = (
            False  # as in asyncstack.runtime.consumer: a valid partial response
        )
        response = process_partial_response(
            event=dict(event), record_handler=record_handler, processor=processor, context=context
        )
        if untouched:
            release(self._sqs, untouched, settings)
        return dict(response)

    def _serve(self, record: SQSRecord, allowed: frozenset[str]) -> Mapping[str, Any]:
        invalid: InvalidRequestError | None = None
        try:
            request = parse_request(record)
        except InvalidRequestError as error:
            if error.request is None:
                raise
            request, invalid = error.request, error
        check_reply_to(request, allowed)
        if request.expired(self.clock()):
            logger.info("request past its deadline; dropped unworked", extra=request.log_fields())
            metrics.add_metric(name="RpcRequestsDropped", unit=MetricUnit.Count, value=1)
            return {"dropped": "DeadlineExpired"}
        if invalid is not None:
            return self._answer_error(request, invalid)
        try:
            result = self._dispatch(request)
        except ActionError as error:
            return self._answer_error(request, error)
        reply(request, result, sqs=self.sqs, stepfunctions=self.stepfunctions)
        metrics.add_metric(name="RpcRequestsAnswered", unit=MetricUnit.Count, value=1)
        return {"answered": "ok"}

    def _answer_error(self, request: RpcRequest, error: ActionError) -> Mapping[str, Any]:
        reply_error(request, error.error_type, str(error), sqs=self.sqs, stepfunctions=self.stepfunctions)
        logger.info("answered with an error", extra={**request.log_fields(), "error_type": error.error_type,
                    "reason": str(error)})  # fmt: skip
        metrics.add_metric(name="RpcErrorReplies", unit=MetricUnit.Count, value=1)
        return {"answered": error.error_type}

    def _dispatch(self, request: RpcRequest) -> Mapping[str, Any]:
        action = self.actions.get(request.action)
        if action is None:
            known = ", ".join(sorted(self.actions)) or "nothing"
            raise UnknownActionError(f"unknown action {request.action!r}; this worker handles {known}")
        return action(request.payload, lambda: heartbeat(request, stepfunctions=self.stepfunctions))

    @property
    def _sqs(self) -> Any:
        return self.sqs or aws.client("sqs")

    def _back_off(self, record: SQSRecord, error: Exception, settings: ConsumerSettings) -> None:
        """Retry after a jittered backoff, but no later than the caller's deadline."""
        receive_count = int(record.attributes.approximate_receive_count or 1)
        delay = backoff_seconds(
            receive_count, base=settings.backoff_base_seconds, cap=settings.backoff_max_seconds
        )
        deadline, _ = _deadline(record)
        if deadline is not None:  # past it, the retry only drops the request: let that happen soon
            delay = min(delay, max(0, math.ceil(deadline / 1000 - self.clock())))
        retry_later(self._sqs, record, error, settings, delay)
