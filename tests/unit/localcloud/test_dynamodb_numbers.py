"""Numbers as DynamoDB takes them: at most 38 significant digits, magnitudes from 1E-130."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.dynamodb import patches

patches.apply()

pytestmark = pytest.mark.unit


@pytest.fixture
def table(aws: None) -> str:
    boto3.client("dynamodb").create_table(
        TableName="numbers",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "numbers"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("1" * 39, "more than 38 significant digits"),
        ("1.00000000000000000000000000000000000001", "more than 38 significant digits"),
        ("1E-131", "Number underflow"),
    ],
)
def test_a_number_dynamodb_cannot_hold_is_a_validation_error(table: str, number: str, message: str) -> None:
    dynamodb = boto3.client("dynamodb")
    with pytest.raises(ClientError, match=message) as raised:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "total": {"N": number}})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    # Nothing was stored, and the table still reads
    assert dynamodb.scan(TableName=table)["Items"] == []


def test_a_number_at_dynamodb_s_limits_is_stored_and_read_back(table: str) -> None:
    dynamodb = boto3.client("dynamodb")
    item = {"pk": {"S": "a"}, "total": {"N": "9" * 38}, "tiny": {"N": "1E-130"}, "set": {"NS": ["1", "2.5"]}}
    dynamodb.put_item(TableName=table, Item=item)
    assert dynamodb.scan(TableName=table)["Items"][0]["total"] == {"N": "9" * 38}
