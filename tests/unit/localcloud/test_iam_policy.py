"""Conformance of the local IAM policy evaluator with the IAM User Guide: "Policy evaluation logic",
"IAM JSON policy element reference" (Principal, Action, NotAction, Resource, NotResource, Condition) and
"IAM JSON policy elements: Condition operators", plus the AccessDenied wording AWS returns."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.iam.policy import (
    Decision,
    PolicyError,
    Request,
    UnknownConditionKey,
    UnsupportedConditionOperator,
    denial_message,
    evaluate,
    role_of,
)

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Worker"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/i-0123"
USER = f"arn:aws:iam::{ACCOUNT}:user/admin"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:order-events"
OTHER_TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:audit-events"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:handler"
RULE = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/nightly"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Orders"


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def send(principal: str = SESSION, resource: str = QUEUE, context: dict[str, Any] | None = None) -> Request:
    return Request(principal, "sqs:SendMessage", resource, context or {})


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    """Whether an identity Allow guarded by ``condition`` grants sqs:SendMessage in ``context``."""
    statement = allow("sqs:SendMessage", QUEUE, Condition=condition)
    return evaluate(send(context=context), [("p", policy(statement))]).allowed


# Policy evaluation logic


def test_identity_policy_allow_grants() -> None:
    """Policy evaluation logic: an Allow in an identity-based policy grants the request."""
    decision = evaluate(send(), [("sqs-send", policy(allow("sqs:SendMessage", QUEUE, Sid="Send")))])
    assert decision == Decision(True, "allowed", "sqs-send", "Send")


def test_missing_action_is_implicit_deny_with_aws_message() -> None:
    """Policy evaluation logic: with no Allow the request is implicitly denied, in AWS's AccessDenied words."""
    request = Request(SESSION, "sqs:DeleteQueue", QUEUE)
    decision = evaluate(request, [("sqs-send", policy(allow("sqs:SendMessage", QUEUE)))])
    assert decision == Decision(False, "implicit-deny")
    assert denial_message(request, decision) == (
        f"User: {SESSION} is not authorized to perform: sqs:DeleteQueue on resource: {QUEUE} "
        "because no identity-based policy allows the sqs:DeleteQueue action"
    )


def test_right_action_on_wrong_resource_is_denied() -> None:
    """IAM JSON policy elements: Resource: an Allow covers only the resources it names."""
    decision = evaluate(send(resource=f"{QUEUE}-dlq"), [("p", policy(allow("sqs:SendMessage", QUEUE)))])
    assert decision.reason == "implicit-deny"


def test_identity_deny_beats_resource_policy_allow() -> None:
    """Policy evaluation logic: an explicit Deny in an identity-based policy overrides any Allow."""
    identity = [("guard", policy({"Sid": "NoSend", "Effect": "Deny", "Action": "sqs:*", "Resource": "*"}))]
    queue_policy = policy(allow("sqs:SendMessage", QUEUE, Principal={"AWS": ROLE}))
    request = send()
    decision = evaluate(request, identity, queue_policy)
    assert decision == Decision(False, "explicit-deny-identity", "guard", "NoSend")
    assert denial_message(request, decision) == (
        f"User: {SESSION} is not authorized to perform: sqs:SendMessage on resource: {QUEUE} "
        "with an explicit deny in an identity-based policy"
    )


def test_resource_policy_deny_beats_identity_allow() -> None:
    """Policy evaluation logic: an explicit Deny in a resource-based policy overrides an identity Allow."""
    queue_policy = {
        "Id": "QueuePolicy",
        "Statement": {"Sid": "Locked", "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage"},
    }
    request = send()
    decision = evaluate(request, [("p", policy(allow("sqs:*")))], queue_policy)
    assert decision == Decision(False, "explicit-deny-resource", "QueuePolicy", "Locked")
    assert denial_message(request, decision).endswith("with an explicit deny in a resource-based policy")


def test_same_account_resource_policy_grants_on_its_own() -> None:
    """Policy evaluation logic (same account): a resource-based policy naming the principal is enough."""
    queue_policy = policy(allow("sqs:SendMessage", QUEUE, Principal={"AWS": ROLE}, Sid="Worker"))
    assert evaluate(send(), [], queue_policy) == Decision(True, "allowed", None, "Worker")


def test_single_statement_object_and_single_strings() -> None:
    """IAM JSON policy element reference: Statement may be one object, and any list may be one string."""
    document = {"Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE}}
    assert evaluate(send(), [("p", document)]).allowed


# Service principals in resource-based policies

TOPIC_TO_QUEUE: dict[str, Any] = {
    "Sid": "TopicToQueue",
    "Effect": "Allow",
    "Principal": {"Service": "sns.amazonaws.com"},
    "Action": "sqs:SendMessage",
    "Resource": QUEUE,
}


@pytest.mark.parametrize(
    "condition",
    [{"ArnEquals": {"aws:SourceArn": TOPIC}}, {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:order-*"}}],
    ids=["ArnEquals", "ArnLike"],
)
def test_queue_policy_lets_sns_send_only_from_its_topic(condition: dict[str, Any]) -> None:
    """Amazon SNS to SQS subscriptions: the queue policy grants sns.amazonaws.com with an aws:SourceArn
    condition; a message from another topic is denied because no resource-based policy allows it."""
    queue_policy = policy({**TOPIC_TO_QUEUE, "Condition": condition})
    allowed = send("sns.amazonaws.com", context={"aws:SourceArn": TOPIC})
    assert evaluate(allowed, [], queue_policy) == Decision(True, "allowed", None, "TopicToQueue")
    assert evaluate(send("sns.amazonaws.com"), [], queue_policy).reason == "implicit-deny"
    denied = send("sns.amazonaws.com", context={"aws:SourceArn": OTHER_TOPIC})
    decision = evaluate(denied, [], queue_policy)
    assert decision.reason == "implicit-deny"
    assert denial_message(denied, decision) == (
        f"User: sns.amazonaws.com is not authorized to perform: sqs:SendMessage on resource: {QUEUE} "
        "because no resource-based policy allows the sqs:SendMessage action"
    )


def test_lambda_permission_allows_its_rule_and_no_other() -> None:
    """Lambda resource-based policies (AddPermission): events.amazonaws.com may invoke only from the named rule."""
    function_policy = policy(
        {
            "Sid": "nightly-invoke",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": FUNCTION,
            "Condition": {"ArnLike": {"AWS:SourceArn": RULE}},
        }
    )

    def invoke(source: str, principal: str = "events.amazonaws.com") -> Decision:
        return evaluate(
            Request(principal, "lambda:InvokeFunction", FUNCTION, {"aws:SourceArn": source}),
            [],
            function_policy,
        )

    assert invoke(RULE).allowed
    assert invoke(f"{RULE}-other").reason == "implicit-deny"
    assert invoke(RULE, principal="sqs.amazonaws.com").reason == "implicit-deny"


@pytest.mark.parametrize(
    ("secure", "allowed"), [(False, False), ("false", False), (True, True), ("true", True)]
)
def test_tls_only_queue_policy(secure: bool | str, allowed: bool) -> None:
    """IAM JSON policy elements: Condition operators (Bool): a Deny on aws:SecureTransport "false" refuses HTTP."""
    queue_policy = policy(
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": QUEUE,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    decision = evaluate(
        send(context={"aws:SecureTransport": secure}), [("p", policy(allow("sqs:*")))], queue_policy
    )
    assert decision.allowed is allowed
    assert decision.reason == ("allowed" if allowed else "explicit-deny-resource")


# Action, NotAction, Resource, NotResource


def test_not_action_matches_every_other_action() -> None:
    """IAM JSON policy elements: NotAction: the statement covers every action except those listed."""
    identity = [("p", policy({"Effect": "Allow", "NotAction": ["sqs:Delete*", "iam:*"], "Resource": "*"}))]
    assert evaluate(send(), identity).allowed
    assert not evaluate(Request(SESSION, "sqs:DeleteQueue", QUEUE), identity).allowed


def test_not_resource_matches_every_other_resource() -> None:
    """IAM JSON policy elements: NotResource: the statement covers every resource except those listed."""
    identity = [
        (
            "p",
            policy(
                allow("sqs:*"),
                {"Effect": "Deny", "Action": "sqs:*", "NotResource": f"{QUEUE}*", "Sid": "Only"},
            ),
        )
    ]
    assert evaluate(send(resource=f"{QUEUE}-dlq"), identity).allowed
    assert evaluate(send(resource=f"arn:aws:sqs:us-east-1:{ACCOUNT}:billing"), identity).reason == (
        "explicit-deny-identity"
    )


@pytest.mark.parametrize("pattern", ["sqs:*", "SQS:sendmessage", "sqs:Send*", "sqs:Send?essage", "*"])
def test_action_wildcards_are_case_insensitive(pattern: str) -> None:
    """IAM JSON policy elements: Action: action names are case-insensitive and accept * and ? wildcards."""
    assert evaluate(send(), [("p", policy(allow(pattern)))]).allowed


def test_action_wildcard_does_not_overreach() -> None:
    """IAM JSON policy elements: Action: dynamodb:Get* covers GetItem but not PutItem."""
    identity = [("p", policy(allow("dynamodb:Get*", TABLE)))]
    assert evaluate(Request(SESSION, "dynamodb:GetItem", TABLE), identity).allowed
    assert not evaluate(Request(SESSION, "dynamodb:PutItem", TABLE), identity).allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("arn:aws:dynamodb:*:*:table/Orders", TABLE, True),
        ("arn:aws:dynamodb:*", f"{TABLE}/index/byCustomer", True),
        (f"{TABLE}/*", f"{TABLE}/stream/2024-01-01T00:00:00.000", True),
        ("arn:aws:sqs:us-east-1:123456789012:order?", QUEUE, True),
        ("arn:aws:sqs:us-east-1:123456789012:Orders", QUEUE, False),
        (f"{TABLE}/*", TABLE, False),
    ],
)
def test_resource_wildcards_span_colons_and_slashes(pattern: str, resource: str, allowed: bool) -> None:
    """IAM JSON policy elements: Resource: ARNs match case-sensitively; * spans colons and slashes, ? one char."""
    request = Request(SESSION, "dynamodb:GetItem", resource)
    assert evaluate(request, [("p", policy(allow("*", pattern)))]).allowed is allowed


# Principal and NotPrincipal


@pytest.mark.parametrize(
    ("principal_element", "caller", "named"),
    [
        ({"AWS": ROLE}, SESSION, True),
        ({"AWS": ROLE}, ROLE, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/service-role/Worker"}, SESSION, True),
        ({"AWS": ROLE}, f"arn:aws:sts::{ACCOUNT}:assumed-role/Other/i-0123", False),
        ({"AWS": ROLE}, f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/Worker/i-0123", False),
        ({"AWS": SESSION}, f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/other-session", False),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, SESSION, True),
        ({"AWS": ACCOUNT}, USER, True),
        ({"AWS": [OTHER_ACCOUNT, ACCOUNT]}, ROLE, True),
        ({"AWS": OTHER_ACCOUNT}, SESSION, False),
        ({"AWS": "*"}, USER, True),
        ({"AWS": "*"}, "sns.amazonaws.com", False),
        ("*", "sns.amazonaws.com", True),
        ({"Service": ["events.amazonaws.com", "sns.amazonaws.com"]}, "sns.amazonaws.com", True),
        ({"Service": "sns.amazonaws.com"}, SESSION, False),
        ({"Federated": "cognito-identity.amazonaws.com"}, "cognito-identity.amazonaws.com", False),
        ({"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}, USER, False),
    ],
)
def test_principal_element(principal_element: Any, caller: str, named: bool) -> None:
    """IAM JSON policy elements: Principal: which callers a statement names: "*", account IDs and root
    ARNs (every principal of the account), roles (and their sessions), AWS vs. Service principals;
    Federated and CanonicalUser never name an IAM caller. (A Deny shows it: it applies to whom it names.)"""
    identity = [("send", policy(allow("sqs:SendMessage", QUEUE)))]
    queue_policy = policy({"Effect": "Deny", "Principal": principal_element, "Action": "sqs:SendMessage"})
    assert (evaluate(send(caller), identity, queue_policy).reason == "explicit-deny-resource") is named


def test_a_resource_policy_that_names_the_account_needs_the_callers_identity_policy_too() -> None:
    """IAM User Guide, "Policy evaluation logic" (same account): a resource policy naming the account
    (its root or ID) grants the account, which delegates to IAM: a role without an identity policy
    allowing the call is denied; one naming the role itself grants it on its own."""
    for account in (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT):
        to_the_account = policy(
            {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sqs:SendMessage"}
        )
        assert not evaluate(send(SESSION), [], to_the_account).allowed
        assert evaluate(
            send(SESSION), [("send", policy(allow("sqs:SendMessage", QUEUE)))], to_the_account
        ).allowed
    to_the_role = policy({"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sqs:SendMessage"})
    assert evaluate(send(SESSION), [], to_the_role).allowed


def test_not_principal_exempts_the_named_role() -> None:
    """IAM JSON policy elements: NotPrincipal: a Deny applies to everyone except the principals listed."""
    queue_policy = policy(
        allow("sqs:*", QUEUE, Principal="*"),
        {"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "sqs:*", "Resource": QUEUE},
    )
    assert evaluate(send(SESSION), [], queue_policy).allowed
    assert evaluate(send(USER), [], queue_policy).reason == "explicit-deny-resource"


def test_malformed_statements_are_rejected() -> None:
    """IAM JSON policy element reference: identity policies need Resource and may not name a Principal."""
    with pytest.raises(PolicyError, match="Resource"):
        evaluate(send(), [("p", policy({"Effect": "Allow", "Action": "sqs:*"}))])
    with pytest.raises(PolicyError, match="forbids Principal"):
        evaluate(send(), [("p", policy(allow("sqs:*", Principal="*")))])
    with pytest.raises(PolicyError, match="Effect"):
        evaluate(send(), [("p", policy({"Effect": "allow", "Action": "sqs:*", "Resource": "*"}))])


# Conditions


def test_condition_blocks_and_keys_are_anded_values_ored() -> None:
    """IAM JSON policy elements: Condition: operators AND, keys within an operator AND, a key's values OR."""
    condition = {
        "StringEquals": {"aws:SourceAccount": [OTHER_ACCOUNT, ACCOUNT], "aws:RequestedRegion": "us-east-1"},
        "Bool": {"aws:SecureTransport": True},
    }
    context = {
        "aws:SourceAccount": ACCOUNT,
        "aws:RequestedRegion": "us-east-1",
        "aws:SecureTransport": "true",
    }
    assert condition_holds(condition, context)
    assert not condition_holds(condition, {**context, "aws:RequestedRegion": "eu-west-1"})
    assert not condition_holds(condition, {**context, "aws:SecureTransport": False})


def test_condition_keys_are_case_insensitive() -> None:
    """IAM JSON policy elements: Condition: condition key names are not case-sensitive."""
    assert condition_holds({"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}, {"aws:sourceaccount": ACCOUNT})


@pytest.mark.parametrize(
    ("operator", "wanted", "actual", "holds"),
    [
        ("StringEquals", "Orders", "orders", False),
        ("StringEqualsIgnoreCase", "Orders", "orders", True),
        ("StringNotEqualsIgnoreCase", "Orders", "orders", False),
        ("StringLike", "team-*/?", "team-a/b", True),
        ("StringNotLike", "team-*", "ops", True),
        ("NumericLessThan", "10", 9, True),
        ("NumericLessThanEquals", 10, "10", True),
        ("NumericGreaterThan", "10", "10", False),
        ("NumericGreaterThanEquals", "10", 10.5, True),
        ("NumericEquals", "3", "3.0", True),
        ("NumericNotEquals", "3", "4", True),
        ("NumericEquals", "3", "three", False),
        ("DateLessThan", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z", True),
        ("DateGreaterThan", "2030-01-01T00:00:00Z", 1893456001, True),
        ("DateEquals", "1970-01-01T00:00:10Z", "10", True),
        ("DateNotEquals", "2030-01-01", "2030-01-01T00:00:00+00:00", False),
        ("DateLessThanEquals", "2030-01-01T00:00:00Z", "2030-01-01T01:00:00+01:00", True),
        ("DateGreaterThanEquals", "2030-01-01T00:00:00Z", "2029-01-01T00:00:00Z", False),
        ("Bool", "TRUE", True, True),
        ("Bool", "true", "false", False),
        ("BinaryEquals", "QmluYXJ5", b"Binary", True),
        ("IpAddress", "10.0.0.0/8", "10.1.2.3", True),
        ("IpAddress", "10.0.0.0/8", "192.168.0.1", False),
        ("IpAddress", "2001:db8::/32", "10.1.2.3", False),
        ("NotIpAddress", "10.0.0.0/8", "192.168.0.1", True),
        ("ArnEquals", "arn:aws:sns:*:123456789012:order-events", TOPIC, True),
        ("ArnLike", "arn:aws:sns:us-east-1:*:*", TOPIC, True),
        ("ArnLike", "arn:aws:sqs:us-east-1:*:*", TOPIC, False),
        ("ArnNotEquals", OTHER_TOPIC, TOPIC, True),
        ("ArnNotLike", "arn:aws:sns:*", TOPIC, False),
    ],
)
def test_condition_operators(operator: str, wanted: Any, actual: Any, holds: bool) -> None:
    """IAM JSON policy elements: Condition operators: string, numeric, date (ISO 8601 or epoch), Bool, binary,
    IP address and ARN operators compare the request context with the policy's values."""
    families = {"IpAddress": "aws:SourceIp", "Arn": "aws:SourceArn", "Date": "aws:CurrentTime"}
    key = next((key for family, key in families.items() if family in operator), "aws:userid")
    assert condition_holds({operator: {key: wanted}}, {key: actual}) is holds


def test_absent_key_makes_a_plain_condition_false() -> None:
    """IAM JSON policy elements: Condition operators: a key absent from the request context does not match."""
    assert not condition_holds({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, {})
    assert not condition_holds({"Bool": {"aws:SecureTransport": "false"}}, {})


def test_if_exists_holds_when_the_key_is_absent() -> None:
    """IAM JSON policy elements: Condition operators (...IfExists): absent key -> true; present key -> compared."""
    condition = {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}
    assert condition_holds(condition, {})
    assert condition_holds(condition, {"aws:SourceAccount": ACCOUNT})
    assert not condition_holds(condition, {"aws:SourceAccount": OTHER_ACCOUNT})


@pytest.mark.parametrize(
    "operator",
    [
        "StringNotEquals",
        "StringNotLike",
        "ArnNotEquals",
        "ArnNotLike",
        "NumericNotEquals",
        "DateNotEquals",
        "NotIpAddress",
    ],
)
def test_negated_operator_holds_when_the_key_is_absent(operator: str) -> None:
    """IAM JSON policy elements: Condition operators: a negated operator is true when the key is absent."""
    assert condition_holds({operator: {"aws:SourceIp": "10.0.0.0/8"}}, {})


def test_null_checks_presence() -> None:
    """IAM JSON policy elements: Condition operators (Null): "true" means absent, "false" means present."""
    assert condition_holds({"Null": {"aws:ResourceTag/team": "true"}}, {})
    assert not condition_holds({"Null": {"aws:ResourceTag/team": "true"}}, {"aws:ResourceTag/team": "a"})
    assert condition_holds({"Null": {"aws:ResourceTag/team": False}}, {"aws:ResourceTag/team": "a"})


def test_for_any_value() -> None:
    """Multivalued context keys (ForAnyValue): true when at least one request value matches; absent key -> false."""
    condition = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "cost-center"]}}
    assert condition_holds(condition, {"aws:TagKeys": ["owner", "team"]})
    assert not condition_holds(condition, {"aws:TagKeys": ["owner"]})
    assert not condition_holds(condition, {"aws:TagKeys": []})
    assert not condition_holds(condition, {})


def test_for_all_values() -> None:
    """Multivalued context keys (ForAllValues): true when every request value matches; absent key -> true."""
    condition = {"ForAllValues:StringLike": {"aws:TagKeys": ["team", "cost-*"]}}
    assert condition_holds(condition, {"aws:TagKeys": ["team", "cost-center"]})
    assert not condition_holds(condition, {"aws:TagKeys": ["team", "owner"]})
    assert condition_holds(condition, {"aws:TagKeys": []})
    assert condition_holds(condition, {})


def test_for_all_values_with_negated_operator() -> None:
    """Multivalued context keys: ForAllValues:StringNotEquals holds when no request value is in the list."""
    condition = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["secret"]}}
    assert condition_holds(condition, {"aws:TagKeys": ["team", "owner"]})
    assert not condition_holds(condition, {"aws:TagKeys": ["team", "secret"]})


def test_principal_keys_are_present_in_every_request() -> None:
    """AWS global condition context keys: aws:PrincipalArn (the role, for a session) and aws:PrincipalAccount."""
    assert condition_holds({"ArnEquals": {"aws:PrincipalArn": ROLE}}, {})
    assert condition_holds({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, {})


# Errors rather than silent decisions


def test_unknown_condition_key_raises() -> None:
    """A key this evaluator does not know is an error naming the key and the statement, never a silent allow."""
    statement = allow("sqs:SendMessage", QUEUE, Sid="Odd", Condition={"StringEquals": {"ec2:Vpc": "vpc-1"}})
    with pytest.raises(UnknownConditionKey, match=r"'p' statement Odd: condition key 'ec2:Vpc'"):
        evaluate(send(), [("p", policy(statement))])


def test_unknown_condition_key_in_a_statement_that_does_not_match_is_ignored() -> None:
    """Policy evaluation logic: a statement's Condition is evaluated only if its Action/Resource/Principal match."""
    statements = [
        allow("sqs:DeleteQueue", QUEUE, Condition={"StringEquals": {"ec2:Vpc": "vpc-1"}}),
        allow("sqs:SendMessage", f"{QUEUE}-dlq", Condition={"StringEquals": {"ec2:Vpc": "vpc-1"}}),
        allow("sqs:SendMessage", QUEUE),
    ]
    queue_policy = policy(
        {
            "Effect": "Deny",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:*",
            "Condition": {"Bogus": {}},
        }
    )
    assert evaluate(send(), [("p", policy(*statements))], queue_policy).allowed


def test_known_key_prefixes() -> None:
    """Tag and service key families (aws:ResourceTag/, kms:EncryptionContext:, sqs:*) are known."""
    for key in (
        "aws:ResourceTag/team",
        "aws:principaltag/Team",
        "kms:EncryptionContext:tenant",
        "sqs:QueueName",
    ):
        assert condition_holds({"StringEquals": {key: "a"}}, {key: "a"})
    with pytest.raises(UnknownConditionKey):
        condition_holds({"StringEquals": {"aws:ResourceTag/": "a"}}, {})


@pytest.mark.parametrize(
    "operator", ["StringEqualz", "ForSomeValues:StringEquals", "NullIfExists", "IfExists", "stringequals"]
)
def test_unknown_operator_raises(operator: str) -> None:
    """IAM JSON policy elements: Condition operators: an operator AWS does not define is an error naming it."""
    with pytest.raises(UnsupportedConditionOperator, match=operator):
        condition_holds({operator: {"aws:SourceAccount": ACCOUNT}}, {"aws:SourceAccount": ACCOUNT})


# role_of and messages


@pytest.mark.parametrize(
    ("principal", "role"),
    [
        (SESSION, ROLE),
        (ROLE, ROLE),
        (
            f"arn:aws:iam::{ACCOUNT}:role/service-role/Worker",
            f"arn:aws:iam::{ACCOUNT}:role/service-role/Worker",
        ),
        (f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/Worker/s", f"arn:aws-cn:iam::{ACCOUNT}:role/Worker"),
        (USER, None),
        ("sns.amazonaws.com", None),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", None),
    ],
)
def test_role_of(principal: str, role: str | None) -> None:
    """IAM identifiers: an assumed-role session ARN names its role (without the role's path)."""
    assert role_of(principal) == role


def test_denial_message_refuses_an_allowed_decision() -> None:
    """An allowed request has no AccessDenied message."""
    with pytest.raises(ValueError, match="allowed"):
        denial_message(send(), Decision(True, "allowed"))
