"""Where moto's DynamoDB must behave as AWS does: numbers within DynamoDB's precision, and a transaction
that backs up only its own items."""

from __future__ import annotations

import contextlib
from typing import Any


def apply() -> None:
    from localcloud.dynamodb import streams

    _numbers_within_precision()
    _transactions_back_up_only_their_items()
    streams.apply()


def _numbers_within_precision() -> None:
    """DynamoDB refuses a number of more than 38 significant digits with a ValidationException (moto
    checks the range only); moto stored it, and then failed every read of the item (Scan answered 500)."""
    import decimal

    from boto3.dynamodb.types import DYNAMODB_CONTEXT
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = DynamoType.__init__

    def check(number: Any) -> None:
        try:
            DYNAMODB_CONTEXT.create_decimal(str(number))
        except (decimal.Inexact, decimal.Rounded) as error:
            raise MockValidationException(
                "Attempting to store more than 38 significant digits in a Number"
            ) from error
        except decimal.DecimalException:
            pass  # not a number, or out of range: moto's own checks answer those as DynamoDB does

    def init(self: Any, type_as_dict: Any) -> None:
        original(self, type_as_dict)
        if self.type == "N":
            check(self.value)
        elif self.type == "NS":
            for number in self.value or []:
                check(number)

    DynamoType.__init__ = init  # type: ignore[method-assign]


def _transactions_back_up_only_their_items() -> None:
    """moto backs up every table a TransactWriteItems names (a deep copy of the whole table) to roll
    it back if the transaction is cancelled, so a transaction costs as much as its tables are big.
    The rollback stays, but only the items the transaction touches are backed up and restored."""
    import copy
    import types

    from moto.dynamodb import models

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, models.Table) else copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Any]]:
        """(table, key, the item's attributes or None) for every item the transaction names."""
        found = []
        for entry in transact_items:
            op: dict[str, Any] = next(iter(entry.values()), {})
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
            key = op.get("Key") or {n: op.get("Item", {}).get(n) for n in names}
            with contextlib.suppress(Exception):  # malformed: moto refuses it before writing anything
                item = backend.get_item(table.name, key)
                found.append((table.name, key, item.to_json()["Attributes"] if item else None))
        return found

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = touched(self, transact_items)
        try:
            transact(self, transact_items)
        except Exception:
            for table, key, attributes in reversed(before):
                if attributes is not None:
                    self.put_item(table, attributes)
                elif self.get_item(table, key) is not None:
                    self.delete_item(table, key)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
