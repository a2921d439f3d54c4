"""The worker's side of request-reply: answer each request of an SQS batch exactly when it can be.

Business errors (``ActionError``) become an error reply and the record succeeds; a request that
cannot be answered (no address, bad JSON without an address, a ``reply_to`` outside
``RPC_REPLY_QUEUE_URLS``) goes to the dead-letter queue at once with the reason, like
``asyncstack.runtime.consumer`` poison pills; a request past its deadline is dropped unworked;
anything else is transient and retried with backoff. Close to the function's own timeout, records
not yet started are released for another invocation. Task-token requests are answered with
``SendTaskSuccess`` / ``SendTaskFailure`` and may heartbeat while they work.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.consumer import backoff_seconds, dead_letter, release, retry_later
from asyncstack.runtime.errors import DeadlineReachedError, NonRetryableError
from asyncstack.runtime.observability import logger, metrics
from asyncstack.runtime.rpc.errors import (
    ActionError,
    InvalidRequestError,
    InvalidTaskTokenError,
    ReplyToRefusedError,
    TaskGoneError,
    UnanswerableRequestError,
    UnknownActionError,
)
from asyncstack.runtime.rpc.messages import (
    RpcRequest,
    error_reply_body,
    parse_request,
    reply_attributes,
    reply_body,
    request_deadline,
)
from asyncstack.runtime.settings import ConsumerSettings, load

__all__ = [
    "Action",
    "Heartbeat",
    "RpcServer",
    "RpcServerSettings",
    "check_reply_to",
    "heartbeat",
    "reply",
    "reply_error",
    "server_settings",
]

_SFN_ERROR_LIMIT = 256  # SendTaskFailure limits
_SFN_CAUSE_LIMIT = 32_768
_TASK_GONE_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist"})

Heartbeat = Callable[[], None]
Action = Callable[[Mapping[str, Any], Heartbeat], Mapping[str, Any]]


class RpcServerSettings(ConsumerSettings):
    """What ``asyncstack.cdk.RequestReply`` tells its worker: its request queue (a work queue) and the
    reply queues it may answer on."""

    # Comma-separated; a reply_to must match one exactly. Empty: task-token requests only.
    reply_queue_urls: frozenset[str] = Field(validation_alias=contract.RPC_REPLY_QUEUE_URLS)

    @field_validator("reply_queue_urls", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(url.strip() for url in value.split(",") if url.strip())
        return value


def server_settings() -> RpcServerSettings:
    return load(RpcServerSettings)


def check_reply_to(request: RpcRequest, allowed: frozenset[str]) -> None:
    """Refuse a ``reply_to`` outside the allowed queues (the URL must match exactly)."""
    if request.is_task or request.reply_to in allowed:
        return
    raise ReplyToRefusedError(
        f"reply_to {request.reply_to} is not an allowed reply queue ({contract.RPC_REPLY_QUEUE_URLS}); "
        "not answering"
    )


def reply(
    request: RpcRequest, result: Mapping[str, Any], *, sqs: Any = None, stepfunctions: Any = None
) -> None:
    """Answer with a result: ``SendTaskSuccess`` for a task token, else a reply on ``reply_to``."""
    if request.task_token is not None:
        _task_call(
            stepfunctions, "send_task_success", taskToken=request.task_token, output=json.dumps(dict(result))
        )
        return
    reply_to, correlation_id = _address(request)
    _send_reply(sqs, reply_to, correlation_id, reply_body(correlation_id, result))


def reply_error(
    request: RpcRequest, error_type: str, message: str, *, sqs: Any = None, stepfunctions: Any = None
) -> None:
    """Answer with an error: ``SendTaskFailure(error=type, cause=message)`` or an error reply."""
    if request.task_token is not None:
        _task_call(
            stepfunctions,
            "send_task_failure",
            taskToken=request.task_token,
            error=error_type[:_SFN_ERROR_LIMIT],
            cause=message[:_SFN_CAUSE_LIMIT],
        )
        return
    reply_to, correlation_id = _address(request)
    _send_reply(sqs, reply_to, correlation_id, error_reply_body(correlation_id, error_type, message))


def heartbeat(request: RpcRequest, *, stepfunctions: Any = None) -> None:
    """Tell Step Functions the task is alive (``HeartbeatSeconds``); nothing for queue replies.

    Best effort, except that a task which is gone stops the work (``TaskGoneError``).
    """
    if request.task_token is None:
        return
    try:
        _task_call(stepfunctions, "send_task_heartbeat", taskToken=request.task_token)
    except (ClientError, BotoCoreError):
        logger.warning("task heartbeat failed; carrying on", extra=request.log_fields(), exc_info=True)


def _task_call(stepfunctions: Any, operation: str, **kwargs: Any) -> None:
    try:
        getattr(stepfunctions or aws.client("stepfunctions"), operation)(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _TASK_GONE_CODES:
            raise TaskGoneError(f"{operation}: the task is gone ({code})") from error
        if code == "InvalidToken":
            raise InvalidTaskTokenError(f"{operation}: Step Functions refused the task token") from error
        raise


def _address(request: RpcRequest) -> tuple[str, str]:
    """Where a queue reply goes: ``reply_to`` and the ``correlation_id`` it is answered under."""
    if not request.reply_to or not request.correlation_id:
        raise UnanswerableRequestError("the request has no reply_to and correlation_id to answer")
    return request.reply_to, request.correlation_id


def _send_reply(sqs: Any, reply_to: str, correlation_id: str, body: str) -> None:
    (sqs or aws.client("sqs")).send_message(
        QueueUrl=reply_to, MessageBody=body, MessageAttributes=reply_attributes(correlation_id)
    )


@dataclass
class RpcServer:
    """Answers RPC requests from an SQS batch with the handler in ``actions`` for each action.

    Its settings (``RpcServerSettings``): the request queue and its DLQ for retry backoff and
    dead-lettering, and the reply queues it may write to.
    """

    actions: Mapping[str, Action]
    sqs: Any = None
    stepfunctions: Any = None
    settings: Callable[[], RpcServerSettings] = server_settings
    clock: Callable[[], float] = time.time

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        settings = self.settings()
        untouched: list[SQSRecord] = []

        def record_handler(record: SQSRecord) -> Mapping[str, Any]:
            if context.get_remaining_time_in_millis() < settings.shutdown_margin_ms:
                untouched.append(record)  # as in asyncstack.runtime.consumer: released below, retried at once
                raise DeadlineReachedError("stopped before the function deadline; will be retried")
            try:
                return self._serve(record, settings.reply_queue_urls)
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
        processor.raise_on_entire_batch_failure = False  # as in asyncstack.runtime.consumer
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
        deadline = request_deadline(record)
        if deadline is not None:  # past it, the retry only drops the request: let that happen soon
            delay = min(delay, max(0, math.ceil(deadline / 1000 - self.clock())))
        retry_later(self._sqs, record, error, settings, delay)
