"""Permissions at the local endpoint: each function calls with temporary credentials for its execution
role (from moto's STS, as Lambda gets them), and each of its requests is authorised with AWS's
evaluation logic against the role's policies and the resource's policy (``policy.py``). Services act
as on AWS: SNS, EventBridge and API Gateway deliveries as their service principals, which only the
resource's policy can allow (``service_may``), and Scheduler schedules, EventBridge targets, Step
Functions tasks, Pipes, API Gateway AWS integrations and event source mappings as their role
(``role_may``, or a client with the role's credentials).

Modes: ``enforce`` answers a denied request with the service's AccessDenied error, ``report`` lets it
through and records it, ``off`` evaluates nothing. Requests signed with any other key (the CLI, the
AWS CLI, tests, the demo driver) keep the administrator identity. What is not evaluated yet:
operations ``requests.py`` cannot name a resource for, and an API Gateway AWS integration without a
credentials role (it calls as the administrator). The endpoint is plain HTTP: ``aws:SecureTransport``
is taken as true, so TLS-only deny statements never match locally.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from localcloud.iam.policy import (
    Decision,
    PolicyError,
    Request,
    denial_message,
    evaluate,
    listed,
    statements,
    wildcard_match,
)
from localcloud.iam.requests import Check, call_of, checks
from localcloud.server import ACCOUNT, DUMMY_CREDENTIALS, MOTO_LOCK, REGION, Refusal

MODES = ("enforce", "report", "off")
DEFAULT_IAM_MODE = os.environ.get("LOCALCLOUD_IAM") or "enforce"  # what `up` and LocalCloud use unless told
ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
ADMIN_KEY = DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
SESSION_SECONDS = 43_200  # Lambda's credentials last up to 12 hours
# Credentials handed out have at least this long left: a session with less is replaced by a new one
# (execution environments retire sooner, ``awslambda/runtime.py``).
REFRESH_SECONDS = 3_600
RECENT = 50  # denials kept for status and the dashboard


@dataclass(frozen=True)
class Denial:
    principal: str
    role: str
    action: str
    resource: str
    message: str
    enforced: bool
    time: str


@dataclass(frozen=True)
class Recorded:
    """An allowed request: who asked (the role whose policies counted, if any), what, and during what."""

    request: Request
    role: str | None
    scenario: str


class Permissions:
    """Authorises requests made with a role's credentials; counts what it denied and what it could not
    evaluate."""

    def __init__(self, mode: str = DEFAULT_IAM_MODE, log: Callable[[str], Any] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown IAM mode {mode!r}: choose one of {', '.join(MODES)}")
        self.mode = mode
        self.log = log or _write_line
        self.lock = threading.Lock()
        self.denied: Counter[str] = Counter()  # by action
        self.not_evaluated: Counter[str] = Counter()  # "service:Operation"
        self.allowed = 0
        self.recent: deque[Denial] = deque(maxlen=RECENT)
        self._sessions: dict[tuple[str, str], tuple[dict[str, str], float]] = {}  # -> (keys, expiry)
        self.used: dict[str, set[tuple[str, str]]] = {}  # role ARN -> (action, resource) of its allowed calls
        # Every allowed request, when a caller wants to replay them against changed policies (a list), and
        # the name of what is running, to tag them with.
        self.recorded: list[Recorded] | None = None
        self.scenario = ""

    # -- credentials --------------------------------------------------------------------------

    def credentials_for(self, role_arn: str, session: str) -> dict[str, str]:
        """Temporary credentials for a role (a session per role and function), as environment variables;
        renewed, as Lambda renews them, once less than REFRESH_SECONDS of them are left."""
        from moto.sts.models import sts_backends

        key = (role_arn, session)
        with self.lock:
            cached = self._sessions.get(key)
        if cached is not None and cached[1] - time.time() > REFRESH_SECONDS:
            return cached[0]
        with MOTO_LOCK:
            assumed = sts_backends[ACCOUNT]["aws"].assume_role(
                region_name=REGION, role_session_name=session[:64], role_arn=role_arn, policy="",
                duration=SESSION_SECONDS, external_id="",
            )  # fmt: skip
        keys = {
            "AWS_ACCESS_KEY_ID": assumed.access_key_id,
            "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
            "AWS_SESSION_TOKEN": assumed.session_token,
        }
        with self.lock:
            self._sessions[key] = (keys, time.time() + SESSION_SECONDS)
        return keys

    # -- authorisation ------------------------------------------------------------------------

    def authorise(self, service: str, environ: dict[str, Any], body: bytes) -> Refusal | None:
        """None to serve the request; the service's AccessDenied answer to refuse it."""
        if self.mode == "off":
            return None
        key = ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        # The local cloud's own key (its clients, the CLI) is no role's: no lookup under moto's lock.
        principal = self._principal(key.group(1)) if key and key.group(1) != ADMIN_KEY else None
        if principal is None:  # the administrator
            return None
        role, session_arn, expired = principal
        if expired:
            return expired_token(service)
        call = call_of(
            service, method=environ.get("REQUEST_METHOD", "GET"), path=environ.get("PATH_INFO", ""),
            query=environ.get("QUERY_STRING", ""), body=body, target=environ.get("HTTP_X_AMZ_TARGET"),
            headers={k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")},
        )  # fmt: skip
        found = None if call is None else checks(call, ACCOUNT, REGION)
        if not found:
            with self.lock:
                self.not_evaluated[f"{service}:{call.operation if call else '?'}"] += 1
            return None
        denied = False
        for check in found:
            message = self._denied(session_arn, role, check)
            if message is None:
                continue
            denied = True
            refusal = self._refuse(service, session_arn, role, check, message)
            if refusal is not None:  # enforced: the first denial answers
                return refusal
        if not denied:
            with self.lock:
                self.allowed += 1
                self.used.setdefault(role, set()).update((c.action, c.resource) for c in found)
        return None

    def _principal(self, access_key_id: str) -> tuple[str, str, bool] | None:
        """(role ARN, assumed-role session ARN, whether the session expired) of a key this cloud issued;
        None for any other key."""
        from moto.core.utils import utcnow
        from moto.sts.models import sts_backends

        with MOTO_LOCK:
            assumed = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(access_key_id)
            return (
                None if assumed is None else (assumed.role_arn, assumed.arn, assumed.expiration <= utcnow())
            )

    def _denied(self, session_arn: str, role: str, check: Check) -> str | None:
        context = {"aws:PrincipalArn": role, "aws:PrincipalAccount": ACCOUNT, "aws:PrincipalType": "AssumedRole",
                   "aws:PrincipalIsAWSService": False, "aws:SourceIp": "127.0.0.1"}  # fmt: skip
        if check.action == "iam:PassRole":
            context["iam:PassedToService"] = f"{check.service}.amazonaws.com"
        elif check.action.startswith("kms:") and check.service not in ("kms", ""):  # a service using the key
            context["kms:ViaService"] = f"{check.service}.{REGION}.amazonaws.com"
        return self._decide(
            Request(session_arn, check.action, check.resource, _request_context(context)), role
        )

    def _decide(self, request: Request, role: str | None) -> str | None:
        message = _decide(request, role)
        if message is None and self.recorded is not None:
            with self.lock:
                self.recorded.append(Recorded(request, role, self.scenario))
        return message

    def _refuse(
        self,
        service: str,
        session_arn: str,
        role: str,
        check: Check,
        message: str,
        *,
        source_arn: str | None = None,
    ) -> Refusal | None:
        enforced = self.mode == "enforce"
        denial = Denial(
            session_arn, role, check.action, check.resource, message, enforced,
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )  # fmt: skip
        with self.lock:
            self.denied[check.action] += 1
            self.recent.append(denial)
        grantee = role.rsplit("/", 1)[-1] if role.startswith("arn:") else f"{role} in the resource's policy"
        grantee += f" for aws:SourceArn {source_arn}" if source_arn else ""
        hint = f"; a grant of {check.action} on {check.resource} to {grantee} would allow it"
        self.log(f"[localcloud] iam {'denied' if enforced else 'would deny'}: {message}{hint}")
        return access_denied(service, message) if enforced else None

    # -- calls made inside the local cloud ----------------------------------------------------

    def service_may(self, service: str, principal: str, action: str, resource: str, source_arn: str) -> bool:
        """Whether a service principal (``sns.amazonaws.com`` delivering for a topic, ``events.amazonaws.com``
        for a rule, ``apigateway.amazonaws.com`` for an API) may act on a resource: only the resource's
        policy can allow it, with ``aws:SourceArn`` naming what it acts for. Report mode answers True."""
        if self.mode == "off":
            return True
        context = {
            "aws:SourceArn": source_arn,
            "aws:SourceAccount": ACCOUNT,
            "aws:PrincipalIsAWSService": True,
        }
        request = Request(principal, action, resource, _request_context(context))
        message = self._decide(request, None)
        if message is None:
            with self.lock:
                self.allowed += 1
            return True
        return (
            self._refuse(
                service, principal, principal, Check(action, resource), message, source_arn=source_arn
            )
            is None
        )

    def role_may(self, service: str, role: str, session: str, action: str, resource: str) -> bool:
        """Whether a role a service assumes (a target's role, a state machine's) may act on a resource."""
        if self.mode == "off":
            return True
        session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}"
        check = Check(action, resource)
        message = self._denied(session_arn, role, check)
        if message is None:
            with self.lock:
                self.allowed += 1
                self.used.setdefault(role, set()).add((action, resource))
            return True
        return self._refuse(service, session_arn, role, check, message) is None

    def unused(self) -> dict[str, list[dict[str, Any]]]:
        """Per role that made calls: each allowed action and resource its policies grant that no
        allowed call used, like IAM Access Analyzer's unused-access findings (``NotAction`` statements
        are left out)."""
        with self.lock:
            used = {role: set(calls) for role, calls in self.used.items()}
        found: dict[str, list[dict[str, Any]]] = {}
        for role, calls in sorted(used.items()):
            with MOTO_LOCK:
                policies = role_policies(role)
            for name, document in policies:
                for statement in statements(document):
                    if (
                        not isinstance(statement, dict)
                        or statement.get("Effect") != "Allow"
                        or "Action" not in statement
                    ):
                        continue
                    resources = listed(statement.get("Resource", "*"))
                    for action in listed(statement["Action"]):
                        if not any(
                            wildcard_match(action, a, ignore_case=True)
                            and any(wildcard_match(r, res) for r in resources)
                            for a, res in calls
                        ):
                            found.setdefault(role, []).append(
                                {"policy": name, "action": action, "resources": resources}
                            )
        return found

    def status(self) -> dict[str, Any]:
        unused = self.unused()
        with self.lock:
            return {
                "unused": unused,
                "mode": self.mode,
                "allowed": self.allowed,
                "denied": sum(self.denied.values()),
                "denied_by_action": dict(self.denied),
                "not_evaluated": dict(self.not_evaluated),
                "recent_denials": [asdict(d) for d in self.recent],
            }


_running: dict[str, Permissions | None] = {"permissions": None}


def set_active(permissions: Permissions | None) -> None:
    """The permissions deliveries made inside the local cloud are checked against (None: no check)."""
    _running["permissions"] = permissions


def service_may(service: str, principal: str, action: str, resource: str, source_arn: str) -> bool:
    """``Permissions.service_may`` of the running cloud; True when none runs."""
    active = _running["permissions"]
    return active is None or active.service_may(service, principal, action, resource, source_arn)


def role_credentials(role: str, session: str) -> dict[str, str] | None:
    """Credentials for a role a service assumes inside the running cloud; None when none runs."""
    active = _running["permissions"]
    return None if active is None else active.credentials_for(role, session)


def role_may(service: str, role: str | None, session: str, action: str, resource: str) -> bool:
    """``Permissions.role_may`` of the running cloud (no role: denied); True when none runs."""
    active = _running["permissions"]
    if active is None:
        return True
    return active.role_may(service, role or f"arn:aws:iam::{ACCOUNT}:role/(none)", session, action, resource)


def _request_context(keys: dict[str, Any]) -> dict[str, Any]:
    """The keys every request carries, and a principal's own."""
    return {
        "aws:ResourceAccount": ACCOUNT, "aws:RequestedRegion": REGION, "aws:SecureTransport": True,
        "aws:CurrentTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **keys,
    }  # fmt: skip


def _decide(request: Request, role: str | None) -> str | None:
    """None when allowed; else AWS's denial message. A role's policies count only for a role's request."""
    try:
        with MOTO_LOCK:
            identity = role_policies(role) if role else []
            resource = resource_policy(request.resource)
        if identity and request.resource.startswith("arn:aws:kms:") and not _key_delegates(request, resource):
            identity = []  # KMS: identity policies count only where the key policy lets the account's IAM in
        decision: Decision = evaluate(request, identity, resource)
    except PolicyError as error:  # an unknown condition key or operator: never a silent allow
        return f"{denial_message(request, Decision(False, 'implicit-deny'))} ({error})"
    return None if decision.allowed else denial_message(request, decision)


def _key_delegates(request: Request, key_policy: dict[str, Any] | None) -> bool:
    """Whether a KMS key's policy allows the account itself (its root) the action, which is what lets
    IAM policies grant it (KMS developer guide, "Allows access to the AWS account and enables IAM
    policies")."""
    root = Request(f"arn:aws:iam::{ACCOUNT}:root", request.action, request.resource, request.context)
    return key_policy is not None and evaluate(root, [], key_policy).allowed


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: lines printed by several threads stay whole


def role_policies(role_arn: str) -> list[tuple[str, dict[str, Any]]]:
    """A role's inline and attached managed policies, as (name, document). Called under moto's lock."""
    from moto.iam.models import iam_backends

    try:
        role = iam_backends[ACCOUNT]["aws"].get_role_by_arn(role_arn)
    except Exception:  # a role that no longer exists grants nothing
        return []
    found = [(name, _document(document)) for name, document in role.policies.items()]
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.version_id == policy.default_version_id), None)
        if version is not None:
            found.append((arn.rsplit("/", 1)[-1], _document(version.document)))
    return found


def resource_policy(arn: str) -> dict[str, Any] | None:
    """The resource-based policy of a queue, topic, function, key or bucket. Called under moto's lock."""
    parts = arn.split(":")
    lookup = _RESOURCE_POLICIES.get(parts[2]) if len(parts) >= 6 else None
    if lookup is None:
        return None
    try:
        found = lookup(arn, ":".join(parts[5:]))
    except Exception:  # no policy (moto raises for a function without one)
        return None
    return _document(found) if found else None


def _queue_policy(arn: str, name: str) -> Any:
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[ACCOUNT][REGION].queues.get(name)
    return None if queue is None else queue.policy


def _topic_policy(arn: str, name: str) -> Any:
    from moto.sns.models import sns_backends

    topic = sns_backends[ACCOUNT][REGION].topics.get(arn)
    return None if topic is None else topic.policy


def _function_policy(arn: str, name: str) -> Any:
    from moto.awslambda.models import lambda_backends

    return lambda_backends[ACCOUNT][REGION].get_function(arn).policy.get_policy()["Policy"]


def _key_policy(arn: str, name: str) -> Any:
    from moto.kms.models import kms_backends

    key = kms_backends[ACCOUNT][REGION].keys.get(name.removeprefix("key/"))
    return None if key is None else key.policy


def _bucket_policy(arn: str, name: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT]["aws"].get_bucket_policy(name.split("/", 1)[0])


_RESOURCE_POLICIES = {
    "sqs": _queue_policy, "sns": _topic_policy, "lambda": _function_policy, "kms": _key_policy, "s3": _bucket_policy,
}  # fmt: skip


def _document(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def expired_token(service: str) -> Refusal:
    """The answer to a request signed with expired temporary credentials, in the service's protocol."""
    message = "The security token included in the request is expired"
    if service == "sns":
        xml = f"<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>{message}</Message></Error></ErrorResponse>"
        return 403, [("Content-Type", "text/xml")], xml.encode()
    if service == "s3":
        return (
            400,
            [("Content-Type", "application/xml")],
            f"<Error><Code>ExpiredToken</Code><Message>{message}</Message></Error>".encode(),
        )
    body = json.dumps({"__type": "ExpiredTokenException", "message": message}).encode()
    return (
        403,
        [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ExpiredTokenException")],
        body,
    )


def access_denied(service: str, message: str) -> Refusal:
    """AccessDenied as each service's protocol answers it, for its SDK to raise (with a request id, as
    every AWS answer has)."""
    status, headers, body = _access_denied(service, message)
    request_id = str(uuid.uuid4())
    return status, [*headers, ("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)], body


def _access_denied(service: str, message: str) -> Refusal:
    if service == "sns":
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>AuthorizationError</Code><Message>{_escape(message)}"
               "</Message></Error><RequestId>localcloud</RequestId></ErrorResponse>")  # fmt: skip
        return 403, [("Content-Type", "text/xml")], xml.encode()
    if service == "s3":
        xml = f"<Error><Code>AccessDenied</Code><Message>{_escape(message)}</Message></Error>"
        return 403, [("Content-Type", "application/xml")], xml.encode()
    if service in ("lambda", "scheduler"):
        body = json.dumps({"Type": "User", "Message": message, "message": message}).encode()
        return (
            403,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")],
            body,
        )
    if service == "sqs":
        body = json.dumps({"__type": "com.amazonaws.sqs#AccessDenied", "message": message}).encode()
        return (
            403,
            [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", "AccessDenied;Sender")],
            body,
        )
    body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
    return 400, [("Content-Type", "application/x-amz-json-1.1")], body


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
