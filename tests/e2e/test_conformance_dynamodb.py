"""Conformance of the local cloud's DynamoDB with AWS where the local cloud changes moto's behaviour:
a cancelled TransactWriteItems leaves every item as it was (the rollback backs up only the items
the transaction names, not whole tables)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e


def test_a_cancelled_transaction_changes_nothing(cloud: LocalCloud) -> None:
    # Given a table with a counter and an unrelated row
    dynamodb = cloud.client("dynamodb")
    table = f"conformance-tx-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )  # fmt: skip
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "counter"}, "n": {"N": "5"}})
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "other"}, "n": {"N": "1"}})
    # When a transaction decrements the counter, puts a new row and then fails a condition
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": {"pk": {"S": "counter"}}, "UpdateExpression": "SET n = n - :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "new"}, "n": {"N": "0"}}}},
            {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "other"}},
                                "ConditionExpression": "n > :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        ])  # fmt: skip
    # Then it is cancelled for the condition, and no item changed
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    rows = {
        item["pk"]["S"]: item["n"]["N"]
        for item in dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    }
    assert rows == {"counter": "5", "other": "1"}
    # And a transaction that holds commits every write
    dynamodb.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": {"pk": {"S": "counter"}}, "UpdateExpression": "SET n = n - :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": "new"}, "n": {"N": "0"}}}},
    ])  # fmt: skip
    rows = {
        item["pk"]["S"]: item["n"]["N"]
        for item in dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    }
    assert rows == {"counter": "4", "other": "1", "new": "0"}
