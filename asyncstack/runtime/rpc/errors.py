"""What request-reply raises: on the caller's side (``RpcError``), and on the server's side, where the
class decides what happens to a request (``ActionError``: answered with an error; another
``NonRetryableError``: dead-lettered, nobody can be answered; anything else: retried)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncstack.runtime.errors import NonRetryableError

if TYPE_CHECKING:
    from asyncstack.runtime.rpc.messages import RpcRequest

__all__ = [
    "ActionError",
    "InvalidRequestError",
    "InvalidTaskTokenError",
    "RemoteError",
    "ReplyToRefusedError",
    "RpcError",
    "RpcTimeoutError",
    "TaskGoneError",
    "UnanswerableRequestError",
    "UnknownActionError",
]

# -- the caller's side ------------------------------------------------------------------------


class RpcError(Exception):
    """Base of what ``RpcClient.call`` raises besides bad arguments (``ValueError``)."""


class RpcTimeoutError(RpcError, TimeoutError):
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


# The old name, kept only until its last callers outside the framework (the demo's chaos run) move.


class RemoteError(RpcError):
    """The worker answered with an error: ``error_type`` is its type (e.g. ``InvalidImage``)."""

    def __init__(self, action: str, error_type: str, message: str, correlation_id: str) -> None:
        super().__init__(f"{action!r} failed remotely: {error_type}: {message}")
        self.action = action
        self.error_type = error_type
        self.remote_message = message
        self.correlation_id = correlation_id


# -- the server's side ------------------------------------------------------------------------


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
