"""Services acting inside the local cloud are authorised as on AWS: a service principal only by the
resource's policy (for its ``aws:SourceArn``), a role a service assumes by the role's policies."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from localcloud.iam.enforcement import Permissions

pytestmark = pytest.mark.unit

ACCOUNT, REGION = "123456789012", "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:orders"


def _queue_letting_the_topic_send(name: str) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": TOPIC}},
    }]}  # fmt: skip
    sqs.create_queue(QueueName=name, Attributes={"Policy": json.dumps(policy)})
    return arn


def test_a_service_principal_may_act_for_the_source_its_resource_policy_names(aws: None) -> None:
    """SNS developer guide, "Sending Amazon SNS messages to an Amazon SQS queue": the queue policy
    grants sns.amazonaws.com SendMessage with aws:SourceArn the topic."""
    queue = _queue_letting_the_topic_send("subscribed")
    lines: list[str] = []
    permissions = Permissions("enforce", log=lines.append)
    assert permissions.service_may("sns", "sns.amazonaws.com", "sqs:SendMessage", queue, TOPIC)
    # Another topic, another service, another action: no statement matches
    other_topic = TOPIC.replace("orders", "refunds")
    assert not permissions.service_may("sns", "sns.amazonaws.com", "sqs:SendMessage", queue, other_topic)
    assert not permissions.service_may("events", "events.amazonaws.com", "sqs:SendMessage", queue, TOPIC)
    assert not permissions.service_may("sns", "sns.amazonaws.com", "sqs:DeleteMessage", queue, TOPIC)
    assert permissions.status()["denied"] == 3
    assert lines[0].startswith(
        f"[localcloud] iam denied: User: sns.amazonaws.com is not authorized to perform: sqs:SendMessage on "
        f"resource: {queue} because no resource-based policy allows the sqs:SendMessage action"
    )
    assert f"for aws:SourceArn {other_topic}" in lines[0]


def test_a_service_principal_gets_nothing_from_a_queue_without_a_policy(aws: None) -> None:
    """Same account or not, a service principal is not an identity of the account: only a resource
    policy can let it in."""
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="bare")
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:bare"
    assert not Permissions("enforce", log=lambda _: None).service_may(
        "sns", "sns.amazonaws.com", "sqs:SendMessage", queue, TOPIC
    )


def test_report_mode_allows_the_delivery_and_records_what_would_be_denied(aws: None) -> None:
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="bare")
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:bare"
    permissions = Permissions("report", log=lambda _: None)
    assert permissions.service_may("sns", "sns.amazonaws.com", "sqs:SendMessage", queue, TOPIC)
    [denial] = permissions.status()["recent_denials"]
    assert (denial["principal"], denial["enforced"]) == ("sns.amazonaws.com", False)


def test_a_role_a_service_assumes_may_do_what_its_policies_allow_and_no_more(aws: None) -> None:
    """EventBridge user guide, "Using IAM roles for targets": a Step Functions target starts executions
    with the target's role, which needs states:StartExecution on the state machine."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="rule-target", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:orders"
    iam.put_role_policy(
        RoleName="rule-target", PolicyName="start", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "states:StartExecution", "Resource": machine}
        ]}),
    )  # fmt: skip
    permissions = Permissions("enforce", log=lambda _: None)
    assert permissions.role_may("events", role, "events", "states:StartExecution", machine)
    assert not permissions.role_may("events", role, "events", "states:StartExecution", machine + "-other")
    [denial] = permissions.status()["recent_denials"]
    assert denial["principal"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/rule-target/events"
    assert permissions.status()["unused"] == {}  # the one grant was used


@pytest.mark.parametrize(("delegates", "allowed"), [(True, True), (False, False)])
def test_a_role_may_use_a_kms_key_only_where_the_key_policy_lets_iam_policies_grant_it(
    aws: None, delegates: bool, allowed: bool
) -> None:
    """KMS developer guide, "Default key policy": identity policies grant a key's use only when the key
    policy allows the account (its root); a key policy without that statement shuts them out."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="reader", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    iam.put_role_policy(RoleName="reader", PolicyName="decrypt", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
    }))  # fmt: skip
    admin = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/admin"}, "Action": "kms:*", "Resource": "*"}  # fmt: skip
    root = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}  # fmt: skip
    policy = {"Version": "2012-10-17", "Statement": [admin, root] if delegates else [admin]}
    key = boto3.client("kms", region_name=REGION).create_key(
        Policy=json.dumps(policy), BypassPolicyLockoutSafetyCheck=True
    )["KeyMetadata"]["Arn"]
    permissions = Permissions("enforce", log=lambda _: None)
    assert permissions.role_may("lambda", role, "reader", "kms:Decrypt", key) is allowed


def test_credentials_are_renewed_before_they_expire_and_expired_ones_are_refused(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda renews an execution role's temporary credentials; STS-signed requests with expired ones are
    refused ("The security token included in the request is expired")."""
    from moto.core.utils import utcnow
    from moto.sts.models import sts_backends

    from localcloud.iam import enforcement

    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="worker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    permissions = Permissions("enforce", log=lambda _: None)
    first = permissions.credentials_for(role, "worker-fn")
    assert permissions.credentials_for(role, "worker-fn") == first  # one session while it is fresh
    # When less than an hour of the session is left, a new one is handed out
    now = enforcement.time.time()
    monkeypatch.setattr(enforcement.time, "time", lambda: now + enforcement.SESSION_SECONDS - 1800)
    second = permissions.credentials_for(role, "worker-fn")
    assert second["AWS_ACCESS_KEY_ID"] != first["AWS_ACCESS_KEY_ID"]
    # And a request signed with the old session once it expired is refused
    assumed = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(first["AWS_ACCESS_KEY_ID"])
    assumed.expiration = utcnow() - timedelta(seconds=1)
    environ = {
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={first['AWS_ACCESS_KEY_ID']}/20261206/us-east-1/sqs/aws4_request",
        "REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": "AmazonSQS.ListQueues",
    }  # fmt: skip
    refusal = permissions.authorise("sqs", environ, b"{}")
    assert refusal is not None and refusal[0] == 403 and b"ExpiredTokenException" in refusal[2]
