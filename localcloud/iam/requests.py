"""What a request to the local endpoint asks for, in IAM's terms: the actions and resource ARNs that
AWS authorises it against ("Actions, resources, and condition keys" of each service).

An operation is named by the request's ``X-Amz-Target`` or ``Action`` (JSON and query protocols), or
by matching its method and path against the service's request URIs in botocore's model (REST
protocols: Lambda, Scheduler, S3). Resources come from the parameters that name them. An operation
whose resources this module does not know yields no checks: it is counted as not evaluated, never
denied (``_RESOURCES`` lists the services evaluated).
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

# The IAM prefix of each signing name, where they differ.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}


@dataclass(frozen=True)
class Check:
    action: str  # "sqs:SendMessage"
    resource: str  # an ARN
    service: str = field(default="", compare=False)  # the service called: iam:PassRole's iam:PassedToService


@dataclass(frozen=True)
class Call:
    service: str  # the signing name, from the credential scope
    operation: str  # "SendMessage"
    params: dict[str, Any]  # the JSON body, the query parameters, or the path's labels
    body: bytes = b""  # as sent (S3's DeleteObjects names its keys in XML)


def call_of(
    service: str, *, method: str, path: str, query: str, body: bytes, target: str | None,
    headers: Mapping[str, str] | None = None,
) -> Call | None:  # fmt: skip
    """The operation and parameters of a request, or None if it names none this module can read.
    ``headers``: lower-case names (REST operations can differ by a header they require)."""
    if target:
        return Call(service, target.rsplit(".", 1)[-1], _json(body))
    form = {k: v[0] for k, v in parse_qs(query).items()} | (
        {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if body[:1] not in (b"{", b"[")
        else {}
    )
    if "Action" in form:
        if service == "sqs" and "QueueUrl" not in form and path.strip("/"):  # the queue named by the path
            form["QueueUrl"] = path
        return Call(service, form["Action"], form)
    found = _rest_operation(service, method, unquote(path), query, headers or {})
    if found is None:
        return None
    operation, labels = found
    return Call(service, operation, {**form, **_json(body), **labels}, body)


def checks(call: Call, account: str, region: str) -> list[Check] | None:
    """The (action, resource) pairs the call is authorised against; None when not evaluated."""
    lookup = _RESOURCES.get(IAM_PREFIX.get(call.service, call.service))
    resources = None if lookup is None else lookup(call, account, region)
    if resources is None:
        return None
    return [Check(action, resource, call.service) for action, resource in resources]


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Route:
    method: str
    path: re.Pattern[str]
    query: dict[str, str]  # parameters the operation requires: name -> value ("" for any)
    headers: frozenset[str]  # headers the operation requires, lower-case
    operation: str


@functools.cache
def _rest_routes(service: str) -> list[_Route]:
    """A REST service's operations from botocore's model. Operations that share a method and path
    differ by what they require: S3's CopyObject a copy-source header, UploadPart a part number."""
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:
        return []
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        uri, _, literal = operation.http.get("requestUri", "/").partition("?")
        pattern = re.sub(r"\\\{([^}+]+)\\\+\\\}", r"(?P<\1>.+)", re.escape(uri))
        pattern = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", pattern)
        query = {key: value for key, _, value in (part.partition("=") for part in literal.split("&") if part)}
        headers = set()
        shape = operation.input_shape
        members = shape.members if shape is not None else {}
        for member in getattr(shape, "required_members", []):
            serialization = members[member].serialization
            where, location = serialization.get("location"), serialization.get("name", member)
            if where == "querystring":
                query.setdefault(location, "")
            elif where == "header":
                headers.add(location.lower())
        routes.append(
            _Route(
                operation.http.get("method", "GET"),
                re.compile(f"^{pattern}/?$"),
                query,
                frozenset(headers),
                name,
            )
        )
    return routes


def _rest_operation(
    service: str, method: str, path: str, query: str, headers: Mapping[str, str]
) -> tuple[str, dict[str, str]] | None:
    """The operation whose method, path, query parameters and headers the request has; the one
    requiring the most, then the one with the most literal path, wins."""
    given = parse_qs(query, keep_blank_values=True)
    best: tuple[tuple[int, int], str, dict[str, str]] | None = None
    for route in _rest_routes(service):
        match = route.path.match(path) if route.method == method else None
        if match is None or any(k not in given or (v and v not in given[k]) for k, v in route.query.items()):
            continue
        if not route.headers <= headers.keys():
            continue
        rank = (len(route.query) + len(route.headers), len(route.path.pattern) - 20 * len(match.groupdict()))
        if best is None or rank > best[0]:
            best = (rank, route.operation, match.groupdict())
    return None if best is None else (best[1], best[2])


def _arn(service: str, account: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _sqs(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    name = (
        str(call.params.get("QueueUrl") or call.params.get("QueueName") or "").rstrip("/").rsplit("/", 1)[-1]
    )
    if not name:
        return [(f"sqs:{call.operation}", "*")] if call.operation == "ListQueues" else None
    action = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}.get(call.operation, call.operation)  # fmt: skip
    return [(f"sqs:{action}", _arn("sqs", account, region, name))]


def _sns(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    arn = call.params.get("TopicArn") or call.params.get("TargetArn")
    if call.operation == "CreateTopic" and call.params.get("Name"):
        arn = _arn("sns", account, region, str(call.params["Name"]))
    if call.operation == "PublishBatch":
        return [("sns:Publish", str(arn))] if arn else None
    return [(f"sns:{call.operation}", str(arn))] if arn else None


DYNAMODB_WRITES = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _dynamodb(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    def table(name: str, index: str | None = None) -> str:
        arn = name if name.startswith("arn:") else _arn("dynamodb", account, region, f"table/{name}")
        return f"{arn}/index/{index}" if index else arn

    params, operation = call.params, call.operation
    if operation in ("BatchWriteItem", "BatchGetItem"):
        tables = sorted((params.get("RequestItems") or {}).keys())
        return [(f"dynamodb:{operation}", table(name)) for name in tables]
    if operation in ("TransactWriteItems", "TransactGetItems"):  # authorised as the actions of its items
        found = []
        for item in params.get("TransactItems") or []:
            for kind, request in (item or {}).items():
                action = DYNAMODB_WRITES.get(kind, "GetItem")
                found.append((f"dynamodb:{action}", table(str((request or {}).get("TableName", "")))))
        return found
    if params.get("TableName"):
        return [(f"dynamodb:{operation}", table(str(params["TableName"]), params.get("IndexName")))]
    if params.get("ResourceArn"):
        return [(f"dynamodb:{operation}", str(params["ResourceArn"]))]
    return [(f"dynamodb:{operation}", "*")] if operation in ("ListTables", "DescribeLimits") else None


def _lambda(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    name = str(call.params.get("FunctionName") or "")
    if not name:
        return [(f"lambda:{call.operation}", "*")] if call.operation.startswith("List") else None
    if not name.startswith("arn:"):
        name = _arn("lambda", account, region, f"function:{name}")
    action = (
        "InvokeFunction"
        if call.operation in ("Invoke", "InvokeAsync", "InvokeWithResponseStream")
        else call.operation
    )
    return [(f"lambda:{action}", name)]


def _states(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    arn = (
        call.params.get("stateMachineArn")
        or call.params.get("executionArn")
        or call.params.get("activityArn")
    )
    if call.operation.startswith("SendTask"):  # authorised on the state machine whose task holds the token
        arn = _token_holder(str(call.params.get("taskToken") or ""), account, region)
    return [(f"states:{call.operation}", str(arn))] if arn else None


def _token_holder(token: str, account: str, region: str) -> str | None:
    """The state machine of the running execution waiting on a task token; None for an unknown token
    (Step Functions answers InvalidToken)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    from localcloud.server import MOTO_LOCK

    with MOTO_LOCK:
        for machine in stepfunctions_parser_backends[account][region].state_machines:
            for execution in machine.executions:
                worker = getattr(execution, "exec_worker", None)
                if worker is not None and worker.env.callback_pool_manager.get(token) is not None:
                    return str(execution.state_machine_arn)
    return None


def _events(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    if call.operation == "PutEvents":
        buses = {str(entry.get("EventBusName") or "default") for entry in call.params.get("Entries") or []}
        return [("events:PutEvents", bus if bus.startswith("arn:") else _arn("events", account, region, f"event-bus/{bus}"))
                for bus in sorted(buses)]  # fmt: skip
    return None


def _scheduler(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    name = call.params.get("Name")
    group = (
        call.params.get("GroupName") or call.params.get("groupName") or "default"
    )  # body, or a DELETE's query
    if call.operation in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule") and name:
        found = [
            (f"scheduler:{call.operation}", _arn("scheduler", account, region, f"schedule/{group}/{name}"))
        ]
        role = (call.params.get("Target") or {}).get("RoleArn")
        if call.operation in ("CreateSchedule", "UpdateSchedule") and role:  # the caller hands its role over
            found.append(("iam:PassRole", str(role)))
        return found
    return None


# S3 operations authorised as another action (S3's "Actions, resources, and condition keys").
S3_ACTIONS = {
    "HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket",
    "DeleteObjects": "DeleteObject", "CopyObject": "PutObject", "UploadPart": "PutObject",
    "UploadPartCopy": "PutObject", "CreateMultipartUpload": "PutObject", "CompleteMultipartUpload": "PutObject",
    "ListParts": "ListMultipartUploadParts", "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListObjectVersions": "ListBucketVersions",
}  # fmt: skip


def _s3(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    bucket, key = call.params.get("Bucket"), call.params.get("Key")
    if not bucket:
        return None
    action = S3_ACTIONS.get(call.operation, call.operation)
    if call.operation == "DeleteObjects":  # authorised per object it names
        keys = [
            html.unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", call.body.decode("utf-8", "replace"))
        ]
        return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{k}") for k in keys] or None
    return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}")]


def _secretsmanager(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    secret = str(call.params.get("SecretId") or "")
    if not secret:
        return None
    found = [(f"secretsmanager:{call.operation}", secret if secret.startswith("arn:") else _arn(
        "secretsmanager", account, region, f"secret:{secret}-??????"))]  # fmt: skip
    key = _secret_key(secret, account, region) if call.operation == "GetSecretValue" else None
    if key is not None:  # Secrets Manager decrypts with the caller's permission on the key
        found.append(("kms:Decrypt", key))
    return found


def _secret_key(secret: str, account: str, region: str) -> str | None:
    """The ARN of the customer managed key a secret is encrypted under; None for AWS's own key."""
    from moto.kms.models import kms_backends
    from moto.secretsmanager.models import secretsmanager_backends

    from localcloud.server import MOTO_LOCK

    with MOTO_LOCK:
        stored = secretsmanager_backends[account][region].secrets.get(secret)
        key = getattr(stored, "kms_key_id", None)
        if not key or str(key) == "alias/aws/secretsmanager":
            return None
        try:
            key_id = kms_backends[account][region].any_id_to_key_id(str(key))
        except Exception:  # an alias that names no key: Secrets Manager fails the call itself
            return None
    return _arn("kms", account, region, f"key/{key_id}")


def _kms(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    key = str(call.params.get("KeyId") or "")
    if not key or key.startswith("alias/"):
        return None  # a key named by its alias, or by the ciphertext: which key is not known here
    return [
        (
            f"kms:{call.operation}",
            key if key.startswith("arn:") else _arn("kms", account, region, f"key/{key}"),
        )
    ]


def _kinesis(call: Call, account: str, region: str) -> list[tuple[str, str]] | None:
    arn = call.params.get("StreamARN")
    name = call.params.get("StreamName")
    if not arn and name:
        arn = _arn("kinesis", account, region, f"stream/{name}")
    return [(f"kinesis:{call.operation}", str(arn))] if arn else None


_RESOURCES = {
    "sqs": _sqs, "sns": _sns, "dynamodb": _dynamodb, "lambda": _lambda, "states": _states, "events": _events,
    "scheduler": _scheduler, "s3": _s3, "secretsmanager": _secretsmanager, "kms": _kms, "kinesis": _kinesis,
}  # fmt: skip
