"""The caller's side of request-reply: send a request, wait for its reply on the caller's own queue.

Why queues for a call: the caller gets back pressure, retries and a dead-letter queue for free, and
the worker scales with the request queue like every other worker.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

from asyncstack.runtime.aws import SDK_MAX_ATTEMPTS
from asyncstack.runtime.observability import logger
from asyncstack.runtime.rpc.errors import RpcTimeoutError
from asyncstack.runtime.rpc.messages import (
    reply_correlation_id,
    reply_result,
    request_attributes,
    request_body,
)

__all__ = ["DEFAULT_TIMEOUT", "MAX_WAIT_SECONDS", "RpcClient", "call"]

DEFAULT_TIMEOUT = 10.0
MAX_WAIT_SECONDS = 20  # the SQS long-poll maximum
# A long poll holds the HTTP response open: the read timeout must outlast it (asyncstack.runtime.aws uses 10 s).
_LONG_POLL_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": SDK_MAX_ATTEMPTS},
    connect_timeout=2,
    read_timeout=MAX_WAIT_SECONDS + 10,
)


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

        Raises ``RemoteError`` when the worker answers with an error, ``RpcTimeoutError`` without an
        answer in time. SQS long polls last whole seconds, so a timeout can overrun by under 1 s.
        """
        if not action or not isinstance(action, str):
            raise ValueError("action must be a non-empty string")
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a mapping, not {type(payload).__name__}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        body = request_body(action, payload)
        correlation_id = str(uuid.uuid4())
        until = self._clock() + timeout
        self.sqs.send_message(
            QueueUrl=self.request_queue_url,
            MessageBody=body,
            MessageAttributes=request_attributes(
                self.reply_queue_url, correlation_id, math.ceil(until * 1000)
            ),
        )
        reply = self._wait_for(correlation_id, until)
        if reply is None:
            raise RpcTimeoutError(action, timeout, correlation_id, self.request_queue_url)
        return reply_result(reply, action, correlation_id)

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
                reply_id = reply_correlation_id(message)
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
