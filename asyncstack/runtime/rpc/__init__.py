"""Request-reply (async RPC) over SQS, and its Step Functions task-token variant.

``client`` (``RpcClient.call``), ``server`` (``RpcServer``: answers, heartbeats, task tokens) and
``messages`` (the wire format both rely on). ``asyncstack.cdk.request_reply.RequestReply`` builds
the queues and the workflow.
"""

from asyncstack.runtime.rpc.client import DEFAULT_TIMEOUT, MAX_WAIT_SECONDS, RpcClient, call
from asyncstack.runtime.rpc.errors import (
    ActionError,
    InvalidRequestError,
    InvalidTaskTokenError,
    RemoteError,
    ReplyToRefusedError,
    RpcError,
    RpcTimeoutError,
    TaskGoneError,
    UnanswerableRequestError,
    UnknownActionError,
)
from asyncstack.runtime.rpc.messages import CORRELATION_ID, DEADLINE, REPLY_TO, RpcRequest, parse_request
from asyncstack.runtime.rpc.server import (
    Action,
    Heartbeat,
    RpcServer,
    RpcServerSettings,
    check_reply_to,
    heartbeat,
    reply,
    reply_error,
)

__all__ = [
    "CORRELATION_ID",
    "DEADLINE",
    "DEFAULT_TIMEOUT",
    "MAX_WAIT_SECONDS",
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
    "RpcServerSettings",
    "RpcTimeoutError",
    "TaskGoneError",
    "UnanswerableRequestError",
    "UnknownActionError",
    "call",
    "check_reply_to",
    "heartbeat",
    "parse_request",
    "reply",
    "reply_error",
]
