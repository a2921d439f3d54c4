"""The order saga deployed with the CDK CLI, run by moto's Step Functions interpreter with the real
step functions: a failure at each step running exactly the compensations of the steps already done
(newest first), retries of transient payment errors, and one execution per order. The happy path is the
demo's saga scenario (test_demo.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from asyncstack.runtime.workflows import start_once
from demo.scenarios import finished_execution, history, states_entered
from localcloud.__main__ import main as localcloud_cli
from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

SKU = "SKU-SAGA-MUG"
SOLD_OUT = "SKU-SAGA-SOLD-OUT"
STOCK = 1000
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "order-saga-happy.json"


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    outputs = cloud.stack_outputs()
    dynamodb = cloud.client("dynamodb")
    for sku, available in ((SKU, STOCK), (SOLD_OUT, 0)):
        dynamodb.put_item(
            TableName=outputs["InventoryTableName"],
            Item={"pk": {"S": f"stock#{sku}"}, "available": {"N": str(available)}},
        )
    return outputs


def _order(**changes: Any) -> dict[str, Any]:
    order = {
        "order_id": f"ord-saga-{uuid.uuid4().hex[:12]}",
        "customer_id": "cus-7",
        "customer_email": "grace@example.com",
        "lines": [{"sku": SKU, "quantity": 2, "unit_price_cents": 1250}],
        "currency": "EUR",
        "payment_method": "pm_card_visa",
    }
    return order | changes


def _run(
    cloud: LocalCloud, outputs: dict[str, str], order: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    started = start_once(
        outputs["OrderWorkflowArn"], order["order_id"], order, client=cloud.client("stepfunctions")
    )
    execution = finished_execution(cloud, started.execution_arn)
    return execution, states_entered(history(cloud, started.execution_arn))


def _stock(cloud: LocalCloud, outputs: dict[str, str], sku: str = SKU) -> int:
    item = cloud.client("dynamodb").get_item(
        TableName=outputs["InventoryTableName"], Key={"pk": {"S": f"stock#{sku}"}}, ConsistentRead=True
    )["Item"]
    return int(item["available"]["N"])


def _row(cloud: LocalCloud, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        cloud.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    )
    return item


def _payment(cloud: LocalCloud, outputs: dict[str, str], order_id: str) -> dict[str, Any] | None:
    return _row(cloud, outputs["PaymentsTableName"], {"pk": {"S": f"payment#{order_id}"}})


def _email(cloud: LocalCloud, outputs: dict[str, str], message_id: str) -> dict[str, Any] | None:
    return _row(cloud, outputs["OutboxTableName"], {"message_id": {"S": message_id}})


STEPS = ["AcceptOrder", "ChargePayment", "ReserveInventory", "SendConfirmation"]


def test_starting_the_same_order_twice_gives_one_execution(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # Given an order whose saga ran
    order = _order()
    execution, _ = _run(cloud, outputs, order)
    # When it is started again
    again = start_once(
        outputs["OrderWorkflowArn"], order["order_id"], order, client=cloud.client("stepfunctions")
    )
    # Then Step Functions refused a second execution of that name, and the first one is returned
    assert again.already_started and again.execution_arn == execution["executionArn"]
    names = [
        e["name"]
        for e in cloud.client("stepfunctions").list_executions(stateMachineArn=outputs["OrderWorkflowArn"])[
            "executions"
        ]
    ]
    assert names.count(order["order_id"]) == 1


# What each failure runs after the step that failed: the compensations of the steps already done,
# newest first, then the customer notice, then the failed end state.
FAILURES = {
    "payment declined": (
        {"payment_method": "pm_card_declined"},
        "PaymentDeclinedError",
        ["AcceptOrder", "ChargePayment", "NotifyFailure", "OrderFailed"],
    ),
    "out of stock": (
        {"lines": [{"sku": SOLD_OUT, "quantity": 1, "unit_price_cents": 999}]},
        "OutOfStockError",
        ["AcceptOrder", "ChargePayment", "ReserveInventory", "RefundPayment", "NotifyFailure", "OrderFailed"],
    ),
    "confirmation rejected": (
        {"customer_email": "nobody@shop.invalid"},
        "RecipientRejectedError",
        [*STEPS, "ReleaseInventory", "RefundPayment", "NotifyFailure", "OrderFailed"],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failure_at_each_step_runs_exactly_the_right_compensations_in_reverse(
    cloud: LocalCloud, outputs: dict[str, str], case: str
) -> None:
    changes, error, expected_states = FAILURES[case]
    # Given an order that fails at one step
    order = _order(**changes)
    before = _stock(cloud, outputs)
    # When the saga runs
    execution, entered = _run(cloud, outputs, order)
    # Then it ends failed, saying why
    assert execution["status"] == "FAILED"
    assert execution["error"] == error
    assert execution.get("cause")
    # And exactly the compensations of the steps already done ran, newest first
    assert entered == expected_states
    # And their effects are undone: stock as before, any charge refunded
    assert _stock(cloud, outputs) == before
    payment = _payment(cloud, outputs, order["order_id"])
    if "RefundPayment" in entered:
        assert payment is not None and payment["status"]["S"] == "refunded"
    else:
        assert payment is None or payment["status"]["S"] != "captured"
    # And the customer was told (unless the address cannot receive mail), and never confirmed
    assert _email(cloud, outputs, f"saga-confirmation#{order['order_id']}") is None
    notice = _email(cloud, outputs, f"saga-failure#{order['order_id']}")
    assert (notice is None) == (case == "confirmation rejected")


def test_transient_payment_errors_are_retried_with_backoff_until_the_charge_goes_through(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # Given a card whose provider fails twice, then works
    order = _order(payment_method="pm_card_flaky")
    # When the saga runs
    execution, entered = _run(cloud, outputs, order)
    # Then the charge was retried (two failed attempts, then a success) and the order confirmed
    assert execution["status"] == "SUCCEEDED"
    events = history(cloud, execution["executionArn"])
    failed = [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"]
    assert failed == ["PaymentProviderUnavailableError"] * 2
    assert entered == [*STEPS, "OrderConfirmed"]


def test_a_payment_provider_that_stays_down_fails_the_order_after_the_retries(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # Given a card whose provider never answers
    order = _order(payment_method="pm_card_unavailable")
    # When the saga runs
    execution, entered = _run(cloud, outputs, order)
    # Then the charge was tried 1 + 3 times and the order failed
    events = history(cloud, execution["executionArn"])
    assert sum(e["type"] == "TaskFailed" for e in events) == 4
    assert execution["status"] == "FAILED" and execution["error"] == "PaymentProviderUnavailableError"
    # And, the charge's outcome being unknown, the payment was voided so that no late charge can go through
    assert entered == ["AcceptOrder", "ChargePayment", "RefundPayment", "NotifyFailure", "OrderFailed"]
    payment = _payment(cloud, outputs, order["order_id"])
    assert payment is not None and payment["status"]["S"] == "voided"


def test_the_cli_starts_the_sample_order_once_by_its_name(
    cloud: LocalCloud, outputs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the happy-path sample and stock for its lines
    order = json.loads(SAMPLE.read_text())
    for line in order["lines"]:
        cloud.client("dynamodb").put_item(
            TableName=outputs["InventoryTableName"],
            Item={"pk": {"S": f"stock#{line['sku']}"}, "available": {"N": "100"}},
        )
    command = [
        "send",
        "OrderWorkflowArn",
        str(SAMPLE),
        "--name",
        order["order_id"],
        "--endpoint",
        cloud.endpoint,
    ]
    # When it is sent with `localcloud send --name <order id>`
    assert localcloud_cli(command) == 0
    started = json.loads(capsys.readouterr().out)
    # Then the execution is named after the order and succeeds
    assert started["executionArn"].endswith(f":{order['order_id']}")
    assert finished_execution(cloud, started["executionArn"])["status"] == "SUCCEEDED"
    # And sending it again is refused with one line, exit 2
    assert localcloud_cli(command) == 2
    assert "ExecutionAlreadyExists" in capsys.readouterr().err
