"""Outages the e2e tests cause on purpose, to put messages in a dead-letter queue the way production would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from localcloud.cloud import LocalCloud


@contextmanager
def inventory_outage(cloud: LocalCloud) -> Iterator[None]:
    """The inventory function misconfigured (a table that does not exist, no backoff between attempts)
    inside the block: every record it takes fails until SQS moves it to the DLQ. Fixed on exit."""
    lambda_ = cloud.client("lambda")
    [function] = [f for f in lambda_.list_functions()["Functions"] if "InventoryWorker" in f["FunctionName"]]
    name = function["FunctionName"]
    good = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    broken = {**good, "INVENTORY_TABLE_NAME": "no-such-table", "BACKOFF_BASE_SECONDS": "0"}
    lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": broken})
    try:
        yield
    finally:
        lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": good})
