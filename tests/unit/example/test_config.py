"""The example's settings (shared/config.py): read once per cold start, one error naming every missing variable."""

from __future__ import annotations

import pytest

from asyncstack import contract
from asyncstack.runtime.long_running import LongRunningStartSettings
from asyncstack.runtime.settings import SettingsError
from shared import config

pytestmark = pytest.mark.unit


def test_a_function_without_its_settings_is_told_every_missing_variable_at_once() -> None:
    # Given the API's environment without its variables
    # When its settings are read
    with pytest.raises(SettingsError) as missing:
        config.ApiSettings.from_environment({})
    # Then one error names each of them
    assert f"{config.ORDERS_TOPIC_ARN} is not set" in str(missing.value)
    assert f"{contract.IDEMPOTENCY_TABLE_NAME} is not set" in str(missing.value)


def test_settings_read_the_names_the_stack_sets() -> None:
    environ = {
        config.ORDERS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:orders",
        contract.IDEMPOTENCY_TABLE_NAME: "idempotency",
        contract.LONG_RUNNING_JOBS_TABLE_NAME: "jobs",
        contract.LONG_RUNNING_STATE_MACHINE_ARN: "arn:aws:states:us-east-1:123456789012:stateMachine:exports",
    }
    api = config.ApiSettings.from_environment(environ)
    start = LongRunningStartSettings.from_environment(environ)
    assert (api.orders_topic_arn, api.idempotency_table_name) == (
        environ[config.ORDERS_TOPIC_ARN],
        "idempotency",
    )
    assert (start.jobs_table, start.state_machine_arn) == (
        "jobs",
        environ[contract.LONG_RUNNING_STATE_MACHINE_ARN],
    )
