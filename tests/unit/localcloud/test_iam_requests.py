"""What a request asks for in IAM's terms: the action and resource ARNs AWS authorises it against
(each service's "Actions, resources, and condition keys")."""

from __future__ import annotations

import json

import pytest

from localcloud.iam.requests import Check, call_of, checks

pytestmark = pytest.mark.unit

ACCOUNT, REGION = "123456789012", "us-east-1"


def resolve(service: str, method: str, path: str, *, query: str = "", body: bytes = b"", target: str | None = None,
            headers: dict[str, str] | None = None) -> list[Check] | None:  # fmt: skip
    call = call_of(service, method=method, path=path, query=query, body=body, target=target, headers=headers)
    return None if call is None else checks(call, ACCOUNT, REGION)


def test_json_protocol_operations_name_their_resource() -> None:
    send = json.dumps({"QueueUrl": f"http://localhost:4566/{ACCOUNT}/orders", "MessageBody": "x"}).encode()
    assert resolve("sqs", "POST", "/", body=send, target="AmazonSQS.SendMessageBatch") == [
        Check("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders")
    ]
    query = json.dumps({"TableName": "Orders", "IndexName": "byCustomer"}).encode()
    assert resolve("dynamodb", "POST", "/", body=query, target="DynamoDB_20120810.Query") == [
        Check("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Orders/index/byCustomer")
    ]


def test_a_transaction_is_authorised_as_the_actions_of_its_items() -> None:
    """DynamoDB authorises TransactWriteItems by the PutItem, UpdateItem, ... of each item, on its table."""
    body = json.dumps(
        {"TransactItems": [{"Put": {"TableName": "A"}}, {"ConditionCheck": {"TableName": "B"}}]}
    )
    assert resolve(
        "dynamodb", "POST", "/", body=body.encode(), target="DynamoDB_20120810.TransactWriteItems"
    ) == [
        Check("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/A"),
        Check("dynamodb:ConditionCheckItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/B"),
    ]


def test_query_protocol_and_rest_operations() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
    assert resolve("sns", "POST", "/", body=f"Action=Publish&TopicArn={topic}&Message=m".encode()) == [
        Check("sns:Publish", topic)
    ]
    assert resolve("lambda", "POST", "/2015-03-31/functions/resize/invocations") == [
        Check("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:resize")
    ]
    assert resolve("scheduler", "POST", "/schedules/remind-1") == [
        Check("scheduler:CreateSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/remind-1")
    ]


def test_s3_operations_that_share_a_path_are_told_apart_by_what_they_require() -> None:
    """PutObject, CopyObject (a copy-source header) and UploadPart (a part number) share PUT /{Bucket}/{Key+};
    S3 authorises the last two as s3:PutObject, and DeleteObjects per key it names."""
    put = resolve("s3", "PUT", "/exports/a/b.csv", query="x-id=PutObject")
    copy = resolve("s3", "PUT", "/exports/a/b.csv", headers={"x-amz-copy-source": "other/k"})
    part = resolve("s3", "PUT", "/exports/a/b.csv", query="partNumber=1&uploadId=u")
    assert put == copy == part == [Check("s3:PutObject", "arn:aws:s3:::exports/a/b.csv")]
    assert resolve("s3", "GET", "/exports", query="list-type=2") == [
        Check("s3:ListBucket", "arn:aws:s3:::exports")
    ]
    delete = b"<Delete><Object><Key>p/1</Key></Object><Object><Key>p/&amp;2</Key></Object></Delete>"
    assert resolve("s3", "POST", "/exports", query="delete", body=delete) == [
        Check("s3:DeleteObject", "arn:aws:s3:::exports/p/1"),
        Check("s3:DeleteObject", "arn:aws:s3:::exports/p/&2"),
    ]


def test_what_cannot_be_resolved_is_not_evaluated() -> None:
    assert resolve("sts", "POST", "/", body=b"Action=GetCallerIdentity") is None
    token = json.dumps({"taskToken": "t", "output": "{}"}).encode()
    assert resolve("states", "POST", "/", body=token, target="AWSStepFunctions.SendTaskSuccess") is None


def test_creating_a_schedule_passes_its_role() -> None:
    """Scheduler's CreateSchedule and UpdateSchedule hand the target's role to the service: the caller
    needs iam:PassRole on it as well (Scheduler user guide, "Identity-based policy examples")."""
    role = f"arn:aws:iam::{ACCOUNT}:role/jobs-scheduler"
    body = json.dumps(
        {"Target": {"Arn": "arn:aws:sqs:us-east-1:123456789012:jobs", "RoleArn": role}}
    ).encode()
    found = resolve("scheduler", "POST", "/schedules/remind-1", body=body)
    assert found == [
        Check("scheduler:CreateSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/remind-1"),
        Check("iam:PassRole", role),
    ]
    assert found is not None and found[1].service == "scheduler"


def test_an_sqs_query_request_may_name_its_queue_by_the_path() -> None:
    """SQS's query protocol: POST /{account}/{queue} with Action=SendMessage (as API Gateway's SQS
    integrations call it) is a send to that queue."""
    assert resolve("sqs", "POST", f"/{ACCOUNT}/orders", body=b"Action=SendMessage&MessageBody=x") == [
        Check("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders")
    ]
