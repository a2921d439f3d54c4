"""Permissions on the local cloud: a function calls with its execution role's credentials and a call its
policies do not allow is denied as AWS denies it (IAM's "Policy evaluation logic").

The stack is ``tests/e2e/permissions_app/app.py``, deployed with the CDK CLI: a function granted
writes to one table, and nothing on another table or on a queue.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "permissions_app" / "app.py"
ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.deploy(["PermissionsStack"], app=f"{sys.executable} {APP}").outputs


@pytest.fixture
def enforcing(cloud: LocalCloud) -> Iterator[None]:
    saved, cloud.permissions.mode = cloud.permissions.mode, "enforce"
    try:
        yield
    finally:
        cloud.permissions.mode = saved


def probe(cloud: LocalCloud, outputs: dict[str, str], event: dict[str, str]) -> Any:
    answer = cloud.client("lambda").invoke(
        FunctionName=outputs["ProbeName"], Payload=json.dumps(event).encode()
    )
    return json.loads(answer["Payload"].read())


def test_a_function_calls_as_its_execution_role(cloud: LocalCloud, outputs: dict[str, str]) -> None:
    """Lambda gives a function temporary credentials for its execution role: STS names the assumed role."""
    role = outputs["ProbeRoleArn"].rsplit("/", 1)[-1]
    identity = probe(cloud, outputs, {})["identity"]
    assert identity == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{outputs['ProbeName']}"


def test_a_call_the_role_allows_succeeds_and_one_it_does_not_is_denied_with_aws_words(
    cloud: LocalCloud, outputs: dict[str, str], enforcing: None
) -> None:
    # When the function writes to the table it was granted, then to another one
    assert probe(cloud, outputs, {"table": outputs["GrantedTable"]}) == {"ok": True}
    denied = probe(cloud, outputs, {"table": outputs["OtherTable"]})
    # Then the second write is refused as DynamoDB refuses it, naming the role, action and table
    role = outputs["ProbeRoleArn"].rsplit("/", 1)[-1]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{outputs['OtherTable']}"
    assert denied == {
        "error": "AccessDeniedException",
        "message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{outputs['ProbeName']} is not authorized "
        f"to perform: dynamodb:PutItem on resource: {table} because no identity-based policy allows the "
        "dynamodb:PutItem action",
    }
    # And an ungranted queue refuses the send with SQS's own error code
    assert probe(cloud, outputs, {"queue": outputs["QueueUrl"]})["error"] == "AccessDenied"
    # And the denials are counted in status, the latest with what was refused
    iam = cloud.status()["iam"]
    assert (
        iam["denied_by_action"]["dynamodb:PutItem"] >= 1 and iam["denied_by_action"]["sqs:SendMessage"] >= 1
    )
    assert {(d["action"], d["resource"], d["enforced"]) for d in iam["recent_denials"]} >= {
        ("dynamodb:PutItem", table, True)
    }


def test_report_mode_lets_a_denied_call_through_and_records_it(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    saved, cloud.permissions.mode = cloud.permissions.mode, "report"
    try:
        assert probe(cloud, outputs, {"table": outputs["OtherTable"]}) == {"ok": True}
    finally:
        cloud.permissions.mode = saved
    latest = cloud.status()["iam"]["recent_denials"][-1]
    assert latest["action"] == "dynamodb:PutItem" and latest["enforced"] is False


def test_status_lists_what_a_role_is_granted_but_no_call_used(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    """Least privilege from the other side, like IAM Access Analyzer's unused-access findings."""
    # Given the function wrote to its table (grant_write_data also grants deletes, updates, batches)
    assert probe(cloud, outputs, {"table": outputs["GrantedTable"]}) == {"ok": True}
    # Then status lists the granted actions no call used, and not the one used
    unused = cloud.status()["iam"]["unused"][outputs["ProbeRoleArn"]]
    actions = {grant["action"] for grant in unused}
    assert "dynamodb:DeleteItem" in actions and "dynamodb:BatchWriteItem" in actions
    assert "dynamodb:PutItem" not in actions
