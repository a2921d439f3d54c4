"""The example's configuration: the environment variables its functions read, and a settings model per
building block, each read once per cold start (``asyncstack.runtime.settings.load``).

``infra/stack.py`` sets these same names, so each is typed once. The framework's own variables (a
construct sets them) are in ``asyncstack.contract``.
"""

from __future__ import annotations

from pydantic import Field

from asyncstack import contract
from asyncstack.runtime.settings import EnvironmentSettings

__all__ = [
    "ANALYTICS_TABLE_NAME",
    "EXPORT_SOURCE_TABLE_NAME",
    "IMAGES_BUCKET_NAME",
    "INVENTORY_TABLE_NAME",
    "ORDERS_TOPIC_ARN",
    "OUTBOX_TABLE_NAME",
    "PAYMENTS_TABLE_NAME",
    "AnalyticsSettings",
    "ApiSettings",
    "ExportSettings",
    "ImagesSettings",
    "InventorySettings",
    "OrdersSettings",
    "OutboxSettings",
    "PaymentsSettings",
]

ORDERS_TOPIC_ARN = "ORDERS_TOPIC_ARN"
INVENTORY_TABLE_NAME = "INVENTORY_TABLE_NAME"
OUTBOX_TABLE_NAME = "OUTBOX_TABLE_NAME"
ANALYTICS_TABLE_NAME = "ANALYTICS_TABLE_NAME"
PAYMENTS_TABLE_NAME = "PAYMENTS_TABLE_NAME"
IMAGES_BUCKET_NAME = "IMAGES_BUCKET_NAME"
# The table an export reads (the analytics table).
EXPORT_SOURCE_TABLE_NAME = "EXPORT_SOURCE_TABLE_NAME"


class OrdersSettings(EnvironmentSettings):
    """Where ``order.created`` events are published."""

    orders_topic_arn: str = Field(validation_alias=ORDERS_TOPIC_ARN, min_length=1)


class ApiSettings(OrdersSettings):
    """The job API: the orders topic, and the table that remembers orders' Idempotency-Keys."""

    idempotency_table_name: str = Field(validation_alias=contract.IDEMPOTENCY_TABLE_NAME, min_length=1)


class InventorySettings(EnvironmentSettings):
    inventory_table: str = Field(validation_alias=INVENTORY_TABLE_NAME, min_length=1)


class OutboxSettings(EnvironmentSettings):
    """The outbox the simulated email provider writes to."""

    outbox_table: str = Field(validation_alias=OUTBOX_TABLE_NAME, min_length=1)


class AnalyticsSettings(EnvironmentSettings):
    analytics_table: str = Field(validation_alias=ANALYTICS_TABLE_NAME, min_length=1)


class PaymentsSettings(EnvironmentSettings):
    """The simulated payment provider's ledger."""

    payments_table: str = Field(validation_alias=PAYMENTS_TABLE_NAME, min_length=1)


class ImagesSettings(EnvironmentSettings):
    images_bucket: str = Field(validation_alias=IMAGES_BUCKET_NAME, min_length=1)


class ExportSettings(EnvironmentSettings):
    """What an export reads; where it writes is the long-running jobs' results bucket."""

    source_table: str = Field(validation_alias=EXPORT_SOURCE_TABLE_NAME, min_length=1)
