"""Where moto's DynamoDB must scale as AWS does: a transaction backs up only its own items."""

from __future__ import annotations

import contextlib
from typing import Any


def apply() -> None:
    _transactions_back_up_only_their_items()


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
