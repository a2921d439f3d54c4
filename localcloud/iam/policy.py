"""IAM policy evaluation within one account, as the IAM User Guide describes it ("Policy evaluation logic",
"IAM JSON policy elements"), so the local cloud refuses what AWS would refuse, in AWS's words.

Unknown condition keys and operators raise instead of evaluating to something: a policy the evaluator does not
understand must never turn into a silent allow (or a silent deny that looks like the application's bug).
"""

from __future__ import annotations

import base64
import ipaddress
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

KNOWN_CONDITION_KEYS: tuple[str, ...] = (
    "aws:SourceArn", "aws:SourceAccount", "aws:SourceOwner", "aws:SecureTransport", "aws:PrincipalArn",
    "aws:PrincipalAccount", "aws:PrincipalOrgID", "aws:PrincipalServiceName", "aws:PrincipalType",
    "aws:CurrentTime", "aws:EpochTime", "aws:RequestedRegion", "aws:SourceIp", "aws:userid", "aws:username",
    "aws:ViaAWSService", "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:SourceVpc",
    "aws:SourceVpce", "aws:TagKeys", "aws:ResourceTag/", "aws:RequestTag/", "aws:PrincipalTag/",
    "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths", "aws:PrincipalIsAWSService",
    "kms:ViaService", "kms:CallerAccount", "kms:EncryptionContext:", "kms:EncryptionContextKeys",
    "kms:GrantIsForAWSResource", "kms:EncryptionAlgorithm",
    "sqs:*", "sns:*", "lambda:FunctionArn", "lambda:FunctionUrlAuthType", "lambda:EventSourceToken", "states:*",
    "dynamodb:LeadingKeys", "dynamodb:Attributes", "dynamodb:Select", "dynamodb:ReturnValues", "s3:*", "logs:*",
    "events:source", "events:detail-type", "events:EventBusInvocation", "scheduler:*", "secretsmanager:*",
    "iam:PassedToService", "iam:AssociatedResourceArn", "sts:ExternalId", "sts:SourceIdentity",
)  # fmt: skip
"""Condition keys the evaluator knows; an entry ending in ``*``, ``/`` or ``:`` stands for every key it prefixes."""


@dataclass(frozen=True)
class Request:
    """One authorisation question: may ``principal`` perform ``action`` on ``resource`` in this context."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The answer, with the statement that decided it so a denial can be traced to its policy."""

    allowed: bool
    reason: str
    policy: str | None = None
    sid: str | None = None


class PolicyError(ValueError):
    """A policy document this evaluator cannot evaluate faithfully (AWS would reject it, or we cannot judge it)."""


class UnknownConditionKey(PolicyError):
    """A condition key missing from ``KNOWN_CONDITION_KEYS``."""


class UnsupportedConditionOperator(PolicyError):
    """A condition operator AWS does not define (or this evaluator does not implement)."""


_SET_OPERATORS = ("ForAnyValue", "ForAllValues")
_PRINCIPAL_KINDS = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})
_ROLE_ARN = re.compile(r"arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)")
_ACCOUNT_ROOT = re.compile(r"arn:[^:]+:iam::(\d{12}):root")
_KNOWN = tuple(known.lower().removesuffix("*") for known in KNOWN_CONDITION_KEYS)


@lru_cache(maxsize=2048)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM wildcards: ``*`` is any run of characters (colons and slashes included), ``?`` exactly one."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match, as Action (``ignore_case``) and Resource elements use it."""
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[Any]:
    """Policy grammar lets any list be a single value."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def statements(document: Mapping[str, Any]) -> list[Any]:
    """A policy's statements (a single statement object is a list of one)."""
    return _as_list(document.get("Statement"))


def listed(value: Any) -> list[str]:
    """An element that is a string or a list of strings (``Action``, ``Resource``), as a list."""
    return [str(item) for item in _as_list(value)]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _instant(value: Any) -> float | None:
    """Dates in conditions are ISO 8601 or epoch seconds; naive times are UTC."""
    if isinstance(value, datetime):
        moment = value
    elif (seconds := _number(value)) is not None:
        return seconds
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


_Compare = Callable[[Any, Any], bool]


def _ordered(parse: Callable[[Any], float | None], kind: str, op: Callable[[float, float], bool]) -> _Compare:
    def compare(actual: Any, wanted: Any) -> bool:
        target = parse(wanted)
        if target is None:
            raise PolicyError(f"{wanted!r} is not a valid {kind} condition value")
        value = parse(actual)
        return value is not None and op(value, target)

    return compare


def _ip_in(actual: Any, wanted: Any) -> bool:
    try:
        network = ipaddress.ip_network(str(wanted), strict=False)
    except ValueError as error:
        raise PolicyError(f"{wanted!r} is not a valid IP address condition value") from error
    try:
        address = ipaddress.ip_address(str(actual))
    except ValueError:
        return False
    return address.version == network.version and address in network


def _arn_like(actual: Any, wanted: Any) -> bool:
    """ArnEquals and ArnLike alike: each colon-separated field matched on its own, with wildcards; a pattern with
    fewer than six fields (``arn:aws:sns:*``) lets its last one cover the rest."""
    patterns = _text(wanted).split(":", 5)
    fields = _text(actual).split(":", len(patterns) - 1)
    return len(fields) == len(patterns) and all(
        _glob(p).fullmatch(f) for f, p in zip(fields, patterns, strict=True)
    )


def _operator_table() -> dict[str, tuple[_Compare, bool]]:
    """Base operator name -> (comparison of one request value with one policy value, whether it is negated)."""
    matching: dict[str, _Compare] = {
        "String{}Equals": lambda a, w: _text(a) == _text(w),
        "String{}EqualsIgnoreCase": lambda a, w: _text(a).lower() == _text(w).lower(),
        "String{}Like": lambda a, w: _glob(_text(w)).fullmatch(_text(a)) is not None,
        "Arn{}Equals": _arn_like,
        "Arn{}Like": _arn_like,
        "Numeric{}Equals": _ordered(_number, "numeric", operator.eq),
        "Date{}Equals": _ordered(_instant, "date", operator.eq),
        "{}IpAddress": _ip_in,
    }
    table = {
        name.format(negation): (compare, bool(negation))
        for name, compare in matching.items()
        for negation in ("", "Not")
    }
    comparisons = {
        "LessThan": operator.lt,
        "LessThanEquals": operator.le,
        "GreaterThan": operator.gt,
        "GreaterThanEquals": operator.ge,
    }
    for family, parse in (("Numeric", _number), ("Date", _instant)):
        table |= {
            family + name: (_ordered(parse, family.lower(), op), False) for name, op in comparisons.items()
        }
    table["Bool"] = (lambda a, w: _text(a).lower() == _text(w).lower(), False)
    table["BinaryEquals"] = (lambda a, w: _text(a) == _text(w), False)
    return table


_OPERATORS = _operator_table()


@dataclass(frozen=True)
class _Test:
    """One key of one operator block: ``{"StringEquals": {key: values}}``."""

    key: str
    values: tuple[Any, ...]
    base: str
    set_operator: str | None
    if_exists: bool

    def holds(self, context: Mapping[str, Any]) -> bool:
        present = self.key in context
        if self.base == "Null":
            return any(_text(v).lower() == ("false" if present else "true") for v in self.values)
        compare, negated = _OPERATORS[self.base]
        if not present:
            return (
                self.if_exists
                or self.set_operator == "ForAllValues"
                or (negated and self.set_operator is None)
            )
        items = _as_list(context[self.key])

        def one(item: Any) -> bool:
            return any(compare(item, wanted) for wanted in self.values) != negated

        if self.set_operator == "ForAllValues":
            return all(one(item) for item in items)
        if self.set_operator == "ForAnyValue":
            return any(one(item) for item in items)
        return any(compare(item, wanted) for item in items for wanted in self.values) != negated


def _operator(name: str) -> tuple[str, str | None, bool]:
    """Split ``ForAnyValue:StringLikeIfExists`` into base operator, set operator and IfExists."""
    set_operator, _, base = name.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if (set_operator and set_operator not in _SET_OPERATORS) or (base not in _OPERATORS and base != "Null"):
        raise UnsupportedConditionOperator(f"condition operator {name!r} is not supported")
    if base == "Null" and if_exists:
        raise UnsupportedConditionOperator(f"condition operator {name!r}: IfExists cannot be added to Null")
    return base, set_operator or None, if_exists


def _known_key(key: str) -> bool:
    lowered = key.lower()
    return any(
        lowered.startswith(known) and len(lowered) > len(known)
        if known.endswith((":", "/"))
        else lowered == known
        for known in _KNOWN
    )


def _tests(condition: Any, where: str) -> list[_Test]:
    """Parse a whole Condition element, so every key and operator is checked before any is evaluated."""
    if condition is None:
        return []
    if not isinstance(condition, Mapping):
        raise PolicyError(f"{where}: Condition must be an object")
    tests: list[_Test] = []
    for name, block in condition.items():
        base, set_operator, if_exists = _operator(name)
        if not isinstance(block, Mapping):
            raise PolicyError(f"{where}: the {name} block must be an object")
        for key, values in block.items():
            if not _known_key(key):
                raise UnknownConditionKey(
                    f"{where}: condition key {key!r} is unknown to the local IAM evaluator "
                    "(add it to KNOWN_CONDITION_KEYS in localcloud/iam/policy.py if AWS defines it)"
                )
            tests.append(_Test(key.lower(), tuple(_as_list(values)), base, set_operator, if_exists))
    return tests


def role_of(principal: str) -> str | None:
    """The role behind a caller: an assumed-role session's role (its ARN carries no path), or a role itself."""
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    _, partition, service, _, account, resource = parts
    if service == "iam" and resource.startswith("role/"):
        return principal
    segments = resource.split("/")
    if service == "sts" and segments[0] == "assumed-role" and len(segments) >= 3:
        return f"arn:{partition}:iam::{account}:role/{segments[1]}"
    return None


def _account(principal: str) -> str | None:
    parts = principal.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None


def _aws_principal(named: str, principal: str) -> bool:
    """``{"AWS": ...}``: everyone with an ARN, an account (ID or root ARN), a role and its sessions, or an exact ARN."""
    if not principal.startswith("arn:"):
        return False
    if named in ("*", principal):
        return True
    if root := _ACCOUNT_ROOT.fullmatch(named):
        named = root.group(1)
    if re.fullmatch(r"\d{12}", named):
        return named == _account(principal)
    caller_role = role_of(principal)
    wanted, actual = _ROLE_ARN.fullmatch(named), _ROLE_ARN.fullmatch(caller_role or "")
    return wanted is not None and actual is not None and wanted.groups() == actual.groups()


def _grants_the_account_only(statement: Mapping[str, Any], principal: str) -> bool:
    """Whether a matching resource-policy statement matched the caller only as a member of its account."""
    spec = statement.get("Principal")
    if not isinstance(spec, Mapping) or _ACCOUNT_ROOT.fullmatch(principal):
        return False  # "*" (everyone), NotPrincipal, or the account itself asking
    if principal.lower() in (str(named).lower() for named in _as_list(spec.get("Service"))):
        return False
    named = [str(n) for n in _as_list(spec.get("AWS"))]
    direct = [n for n in named if not (re.fullmatch(r"\d{12}", n) or _ACCOUNT_ROOT.fullmatch(n))]
    return not any(_aws_principal(n, principal) for n in direct)


def _principal_matches(spec: Any, principal: str, where: str) -> bool:
    if spec == "*":
        return True
    if not isinstance(spec, Mapping) or not set(spec) <= _PRINCIPAL_KINDS:
        raise PolicyError(f'{where}: Principal must be "*" or an object keyed by {sorted(_PRINCIPAL_KINDS)}')
    aws = any(_aws_principal(str(named), principal) for named in _as_list(spec.get("AWS")))
    return aws or principal.lower() in (str(named).lower() for named in _as_list(spec.get("Service")))


def _element(statement: Mapping[str, Any], name: str, where: str, test: Callable[[Any], bool]) -> bool | None:
    """``Action``/``NotAction`` and the like: whether the statement covers the request, None when both are absent."""
    if name in statement and f"Not{name}" in statement:
        raise PolicyError(f"{where}: a statement cannot have both {name} and Not{name}")
    if name in statement:
        return test(statement[name])
    if f"Not{name}" in statement:
        return not test(statement[f"Not{name}"])
    return None


def _any_glob(patterns: Any, value: str, ignore_case: bool) -> bool:
    return any(_glob(str(pattern), ignore_case).fullmatch(value) for pattern in _as_list(patterns))


def _applies(
    statement: Any, request: Request, context: Mapping[str, Any], where: str, resource_policy: bool
) -> bool:
    """Whether a statement matches the request: Action, Resource, Principal, then (only then) Condition."""
    if not isinstance(statement, Mapping):
        raise PolicyError(f"{where}: a statement must be an object")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f'{where}: Effect must be "Allow" or "Deny", not {statement.get("Effect")!r}')
    action = _element(statement, "Action", where, lambda v: _any_glob(v, request.action, ignore_case=True))
    if action is None:
        raise PolicyError(f"{where}: a statement needs Action or NotAction")
    resource = _element(
        statement, "Resource", where, lambda v: _any_glob(v, request.resource, ignore_case=False)
    )
    if resource is None and not resource_policy:
        raise PolicyError(f"{where}: an identity-based policy statement needs Resource or NotResource")
    principal = _element(
        statement, "Principal", where, lambda v: _principal_matches(v, request.principal, where)
    )
    if (principal is None) == resource_policy:
        kind = (
            "a resource-based policy statement needs"
            if resource_policy
            else "an identity-based policy forbids"
        )
        raise PolicyError(f"{where}: {kind} Principal or NotPrincipal")
    if not action or resource is False or principal is False:
        return False
    return all(test.holds(context) for test in _tests(statement.get("Condition"), where))


def _matching(
    document: Mapping[str, Any],
    request: Request,
    context: Mapping[str, Any],
    label: str,
    resource_policy: bool,
) -> list[Mapping[str, Any]]:
    """The statements of one policy that match the request (all of them evaluated, so every error surfaces)."""
    found: list[Mapping[str, Any]] = []
    for index, statement in enumerate(statements(document)):
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        where = f"{label} statement {sid if sid is not None else f'#{index}'}"
        if _applies(statement, request, context, where, resource_policy):
            found.append(statement)
    return found


def _context(request: Request) -> dict[str, Any]:
    """The request context, keys lower-cased; the principal keys AWS always sets are filled in unless given."""
    context: dict[str, Any] = {}
    if request.principal.startswith("arn:"):
        context["aws:principalarn"] = role_of(request.principal) or request.principal
        context["aws:principalaccount"] = _account(request.principal)
    else:
        context["aws:principalservicename"] = request.principal
    context.update((key.lower(), value) for key, value in request.context.items())
    return {key: value for key, value in context.items() if value is not None}


def evaluate(
    request: Request,
    identity_policies: Sequence[tuple[str, Mapping[str, Any]]],
    resource_policy: Mapping[str, Any] | None = None,
) -> Decision:
    """AWS's single-account order: any explicit Deny wins; else an Allow in either kind of policy; else implicit deny."""
    context = _context(request)
    matched: list[tuple[str, str | None, Mapping[str, Any]]] = [
        ("explicit-deny-identity", name, statement)
        for name, document in identity_policies
        for statement in _matching(document, request, context, f"policy {name!r}", resource_policy=False)
    ]
    if resource_policy is not None:
        name = str(resource_policy["Id"]) if "Id" in resource_policy else None
        matched += [
            ("explicit-deny-resource", name, statement)
            for statement in _matching(
                resource_policy, request, context, "resource policy", resource_policy=True
            )
        ]
    for reason, name, statement in matched:
        if statement["Effect"] == "Deny":
            return Decision(False, reason, name, statement.get("Sid"))
    # A resource policy that names the caller's account (its root or ID) grants the account, not the
    # caller: within the account, the caller's identity policies must still allow the call.
    allowing = [
        (name, statement) for reason, name, statement in matched
        if reason == "explicit-deny-identity" or not _grants_the_account_only(statement, request.principal)
    ]  # fmt: skip
    if allowing:
        name, statement = allowing[0]
        return Decision(True, "allowed", name, statement.get("Sid"))
    return Decision(False, "implicit-deny")


def denial_message(request: Request, decision: Decision) -> str:
    """The AccessDenied message AWS returns for this denial, principal first."""
    head = f"User: {request.principal} is not authorized to perform: {request.action} on resource: {request.resource}"
    if decision.allowed:
        raise ValueError("the request was allowed: there is no denial to describe")
    if decision.reason == "explicit-deny-identity":
        return f"{head} with an explicit deny in an identity-based policy"
    if decision.reason == "explicit-deny-resource":
        return f"{head} with an explicit deny in a resource-based policy"
    kind = "identity" if request.principal.startswith("arn:") else "resource"
    return f"{head} because no {kind}-based policy allows the {request.action} action"
