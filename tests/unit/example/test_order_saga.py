"""The order saga's steps and compensations, their handlers, and the sample executions in events/."""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from asyncstack.runtime.errors import TransientError
from shared.inventory import InventoryRepository
from shared.mailer import OutboxEmailProvider
from shared.order_saga import (
    BusinessRuleViolationError,
    InvalidOrderError,
    OutOfStockError,
    PaymentDeclinedError,
    PaymentProviderUnavailableError,
    RecipientRejectedError,
    SagaFailure,
    SagaOrder,
    UnknownActionError,
    failure_reason,
    is_suppressed,
    run_inventory_step,
    run_notification_step,
    run_payment_step,
)
from shared.payments import SimulatedPaymentProvider
from tests.conftest import EVENTS, load_event
from tests.unit.conftest import REGION, AwsFaults, context, make_table

pytestmark = pytest.mark.unit

SAMPLES = sorted(path.name for path in EVENTS.glob("order-saga-*.json"))


class SagaTables:
    def __init__(
        self, payments: SimulatedPaymentProvider, inventory: InventoryRepository, outbox: OutboxEmailProvider
    ) -> None:
        self.payments = payments
        self.inventory = inventory
        self.outbox = outbox

    def stock(self) -> dict[str, int]:
        return {sku: self.inventory.available(sku) for sku in ("SKU-RED-MUG", "SKU-TEA-100G")}

    def emails(self) -> list[dict[str, Any]]:
        items = boto3.client("dynamodb", region_name=REGION).scan(TableName=self.outbox.table)["Items"]
        return [{key: value["S"] for key, value in item.items()} for item in items]


@pytest.fixture
def saga(tables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> SagaTables:
    """The three tables the saga's functions use, named in their environment variables, stock on hand."""
    monkeypatch.setenv("PAYMENTS_TABLE_NAME", make_table("payments", "pk"))
    made = SagaTables(
        payments=SimulatedPaymentProvider("payments"),
        inventory=InventoryRepository(tables["INVENTORY_TABLE_NAME"]),
        outbox=OutboxEmailProvider(tables["OUTBOX_TABLE_NAME"]),
    )
    made.inventory.put_stock("SKU-RED-MUG", 10)
    made.inventory.put_stock("SKU-TEA-100G", 10)
    return made


def order(**overrides: Any) -> dict[str, Any]:
    """The happy sample (2 mugs and 1 tea, 33.99 EUR, pm_card_visa) with ``overrides``."""
    return {**load_event("order-saga-happy.json"), **overrides}


def pay(saga: SagaTables, action: str, data: dict[str, Any]) -> dict[str, Any]:
    return run_payment_step({"action": action, "order": data}, provider=saga.payments)


def stock(saga: SagaTables, action: str, data: dict[str, Any]) -> dict[str, Any]:
    return run_inventory_step({"action": action, "order": data}, repository=saga.inventory)


def notify(saga: SagaTables, action: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return run_notification_step({"action": action, "order": data, **extra}, provider=saga.outbox)


# -- the order ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_is_a_valid_execution_input(name: str) -> None:
    sample = load_event(name)
    parsed = SagaOrder.model_validate(sample)
    assert parsed.order_id.startswith("ord-saga-")
    assert parsed.model_dump(mode="json") == sample


def test_the_payment_method_defaults_to_the_card_that_succeeds() -> None:
    data = order()
    del data["payment_method"]
    assert SagaOrder.model_validate(data).payment_method == "pm_card_visa"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"action": "charge", "order": order(lines=[])}, InvalidOrderError),
        ({"action": "charge", "order": order(coupon="FREE")}, InvalidOrderError),
        ({"action": "charge"}, InvalidOrderError),
        ({"action": "charge", "order": order(payment_method="pm_card_amex")}, InvalidOrderError),
        ({"action": "capture", "order": order()}, UnknownActionError),
        ({"order": order()}, UnknownActionError),
    ],
)
def test_a_malformed_step_input_is_never_retried(
    saga: SagaTables, event: dict[str, Any], error: type
) -> None:
    with pytest.raises(error):
        run_payment_step(event, provider=saga.payments)
    assert not issubclass(error, TransientError)
    assert saga.payments.client.scan(TableName=saga.payments.table)["Items"] == []


def test_business_errors_share_a_base_and_transient_ones_keep_their_own_names() -> None:
    for error in (InvalidOrderError, PaymentDeclinedError, OutOfStockError, RecipientRejectedError):
        assert issubclass(error, BusinessRuleViolationError)
    assert issubclass(PaymentProviderUnavailableError, TransientError)
    assert PaymentProviderUnavailableError.__name__ == "PaymentProviderUnavailableError"


# -- payment step ---------------------------------------------------------------------------------


def test_charge_captures_the_order_total(saga: SagaTables) -> None:
    # When the happy order is charged
    result = pay(saga, "charge", order())
    # Then the whole total is captured, and the ledger has it
    assert result == {
        "payment_id": result["payment_id"],
        "amount_cents": 2 * 1250 + 899,
        "currency": "EUR",
        "status": "captured",
    }
    assert saga.payments.payment("ord-saga-0001")["status"]["S"] == "captured"


def test_a_retried_charge_returns_the_same_payment(saga: SagaTables) -> None:
    first = pay(saga, "charge", order())
    assert pay(saga, "charge", order()) == first
    assert saga.payments.payment("ord-saga-0001")["attempts"]["N"] == "2"


def test_a_declined_card_fails_the_charge_step(saga: SagaTables) -> None:
    with pytest.raises(PaymentDeclinedError, match="card declined"):
        pay(saga, "charge", order(payment_method="pm_card_declined"))


def test_a_flaky_card_succeeds_on_the_third_invocation(saga: SagaTables) -> None:
    # Given three separate invocations of the charge step for the same order
    data = order(payment_method="pm_card_flaky")
    for _ in range(2):
        with pytest.raises(PaymentProviderUnavailableError):
            run_payment_step({"action": "charge", "order": data})
    # Then the third one is captured
    assert run_payment_step({"action": "charge", "order": data})["status"] == "captured"


def test_an_unavailable_provider_fails_every_invocation_as_transient(saga: SagaTables) -> None:
    for _ in range(4):
        with pytest.raises(PaymentProviderUnavailableError):
            pay(saga, "charge", order(payment_method="pm_card_unavailable"))


def test_refund_compensates_a_charge_once(saga: SagaTables) -> None:
    # Given a captured charge
    payment_id = pay(saga, "charge", order())["payment_id"]
    # When the compensation refunds it, twice
    # Then both report the refund of that payment
    assert pay(saga, "refund", order()) == {"payment_id": payment_id, "status": "refunded"}
    assert pay(saga, "refund", order()) == {"payment_id": payment_id, "status": "refunded"}
    assert saga.payments.payment("ord-saga-0001")["status"]["S"] == "refunded"


def test_refund_without_a_charge_has_nothing_to_refund(saga: SagaTables) -> None:
    assert pay(saga, "refund", order()) == {"payment_id": None, "status": "nothing_to_refund"}


# -- inventory step -------------------------------------------------------------------------------


def test_reserve_takes_the_stock_and_records_what_it_took(saga: SagaTables) -> None:
    assert stock(saga, "reserve", order()) == {"status": "reserved", "units": 3}
    assert saga.stock() == {"SKU-RED-MUG": 8, "SKU-TEA-100G": 9}
    row = saga.inventory.reservation("ord-saga-0001")
    assert row is not None
    assert row["event_id"]["S"] == "saga:ord-saga-0001"
    assert row["quantities"]["M"] == {"SKU-RED-MUG": {"N": "2"}, "SKU-TEA-100G": {"N": "1"}}


def test_a_retried_reserve_succeeds_without_taking_more_stock(saga: SagaTables) -> None:
    stock(saga, "reserve", order())
    assert stock(saga, "reserve", order()) == {"status": "reserved", "units": 3}
    assert saga.stock() == {"SKU-RED-MUG": 8, "SKU-TEA-100G": 9}


def test_release_after_reserve_restores_the_stock_exactly(saga: SagaTables) -> None:
    # Given an order whose sku appears on two lines, reserved
    data = order(lines=[*order()["lines"], {"sku": "SKU-RED-MUG", "quantity": 3, "unit_price_cents": 1250}])
    stock(saga, "reserve", data)
    assert saga.stock() == {"SKU-RED-MUG": 5, "SKU-TEA-100G": 9}
    # When the compensation releases it
    result = stock(saga, "release", data)
    # Then every unit is back and the reservation says released
    assert result == {"status": "released", "units": 6}
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}
    assert saga.inventory.reservation("ord-saga-0001")["status"]["S"] == "released"


def test_a_second_release_releases_nothing(saga: SagaTables) -> None:
    stock(saga, "reserve", order())
    stock(saga, "release", order())
    assert stock(saga, "release", order()) == {"status": "nothing_to_release"}
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}


def test_release_without_a_reservation_releases_nothing(saga: SagaTables) -> None:
    assert stock(saga, "release", order()) == {"status": "nothing_to_release"}
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}
    assert saga.inventory.reservation("ord-saga-0001") is None


def test_release_after_a_refused_reservation_releases_nothing(saga: SagaTables) -> None:
    # Given an order refused for want of stock
    data = load_event("order-saga-out-of-stock.json")
    with pytest.raises(OutOfStockError):
        stock(saga, "reserve", data)
    # When it is released, Then no stock appears out of nowhere
    assert stock(saga, "release", data) == {"status": "nothing_to_release"}
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}
    assert saga.inventory.available("SKU-SOLD-OUT") == 0


def test_out_of_stock_names_the_short_skus_also_on_a_retry(saga: SagaTables) -> None:
    # Given an order for 1000 of a sold-out sku and one mug, which is in stock
    data = load_event("order-saga-out-of-stock.json")
    for _attempt in range(2):
        # When it is reserved (and retried)
        with pytest.raises(OutOfStockError, match="SKU-SOLD-OUT") as raised:
            stock(saga, "reserve", data)
        # Then only the short sku is named, and the mug was not taken
        assert raised.value.skus == ["SKU-SOLD-OUT"]
        assert "SKU-RED-MUG" not in str(raised.value)
    assert saga.stock()["SKU-RED-MUG"] == 10


def test_a_reservation_row_from_before_quantities_were_recorded_releases_the_order_lines(
    saga: SagaTables,
) -> None:
    stock(saga, "reserve", order())
    saga.inventory.client.update_item(
        TableName=saga.inventory.table,
        Key={"pk": {"S": "reservation#ord-saga-0001"}},
        UpdateExpression="REMOVE quantities",
    )
    assert stock(saga, "release", order()) == {"status": "released", "units": 3}
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}


def test_a_released_order_is_not_reserved_again(saga: SagaTables) -> None:
    stock(saga, "reserve", order())
    stock(saga, "release", order())
    with pytest.raises(InvalidOrderError, match="cancelled"):
        stock(saga, "reserve", order())
    assert saga.stock() == {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}


# -- notification step ----------------------------------------------------------------------------


def test_confirm_writes_the_confirmation_to_the_outbox_once(saga: SagaTables) -> None:
    assert notify(saga, "confirm", order()) == {"message_id": "saga-confirmation#ord-saga-0001", "sent": True}
    assert notify(saga, "confirm", order()) == {
        "message_id": "saga-confirmation#ord-saga-0001",
        "sent": False,
    }
    [email] = saga.emails()
    assert (email["to"], email["subject"]) == ("ada@example.com", "Order ord-saga-0001 confirmed")
    assert "2 x SKU-RED-MUG" in email["body"]
    assert "33.99 EUR" in email["body"]


def test_confirm_to_an_undeliverable_address_is_rejected(saga: SagaTables) -> None:
    with pytest.raises(RecipientRejectedError, match=r"shop\.invalid") as raised:
        notify(saga, "confirm", order(customer_email="x@shop.invalid"))
    assert "x@" not in str(raised.value)  # the error lands in the execution history: no full address
    assert saga.emails() == []


@pytest.mark.parametrize(
    ("address", "suppressed"),
    [
        ("x@shop.invalid", True),
        ("x@SHOP.INVALID", True),
        ("x@mail.shop.invalid.", True),
        ("x@example.com", False),
        ("x@invalid.example.com", False),
        ("x@shopinvalid.com", False),
    ],
)
def test_the_default_suppression_check_is_the_reserved_invalid_domain(address: str, suppressed: bool) -> None:
    assert is_suppressed(address) is suppressed


def test_notify_failure_tells_the_customer_why(saga: SagaTables) -> None:
    # Given the failure a Catch recorded for a declined card (Cause: the Lambda error as JSON)
    cause = json.dumps(
        {
            "errorMessage": "card declined (pm_card_declined) for order ord-saga-0001",
            "errorType": "PaymentDeclinedError",
        }
    )
    failure = {"Error": "PaymentDeclinedError", "Cause": cause}
    # When the customer is notified
    result = notify(saga, "notify_failure", order(), failure=failure)
    # Then the notice names the order and the reason, not the raw JSON
    assert result == {"message_id": "saga-failure#ord-saga-0001", "sent": True}
    [email] = saga.emails()
    assert email["subject"] == "Order ord-saga-0001 could not be completed"
    assert (
        "Reason: card declined (pm_card_declined) for order ord-saga-0001 (PaymentDeclinedError)"
        in email["body"]
    )
    assert "errorType" not in email["body"]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (
            {"Error": "States.Timeout", "Cause": "Task timed out after 30 seconds"},
            "Task timed out after 30 seconds (States.Timeout)",
        ),
        ({"Error": "States.TaskFailed", "Cause": "not json {"}, "not json { (States.TaskFailed)"),
        (
            {"Error": "OutOfStockError", "Cause": '{"errorType": "OutOfStockError"}'},
            '{"errorType": "OutOfStockError"} (OutOfStockError)',
        ),
        ({}, "no details were given"),
        (None, "no details were given"),
        ("something broke", "something broke"),
    ],
)
def test_the_failure_reason_uses_what_the_failure_carries(failure: Any, reason: str) -> None:
    assert failure_reason(SagaFailure.from_state(failure)) == reason


def test_notify_failure_to_an_undeliverable_address_is_skipped_not_raised(saga: SagaTables) -> None:
    failure = {"Error": "RecipientRejectedError", "Cause": "{}"}
    result = notify(saga, "notify_failure", order(customer_email="x@shop.invalid"), failure=failure)
    assert result == {"message_id": "saga-failure#ord-saga-0001", "sent": False}
    assert saga.emails() == []


def test_an_unknown_notification_action_is_refused(saga: SagaTables) -> None:
    with pytest.raises(UnknownActionError, match="notify_failure"):
        notify(saga, "notify", order())


# -- the deployed handlers ------------------------------------------------------------------------


def fresh_handler(name: str) -> ModuleType:
    """Import the handler as a cold start would: module state (caches, clients) starts empty."""
    return importlib.reload(importlib.import_module(f"functions.{name}.handler"))


def invoke(name: str, event: dict[str, Any]) -> Any:
    return fresh_handler(name).handler(event, context(name=f"{name}-fn"))


def test_each_handler_runs_its_step_with_the_environment_tables(saga: SagaTables) -> None:
    assert invoke("order_payments", {"action": "charge", "order": order()})["status"] == "captured"
    assert invoke("order_inventory", {"action": "reserve", "order": order()}) == {
        "status": "reserved",
        "units": 3,
    }
    assert invoke("order_notifications", {"action": "confirm", "order": order()})["sent"] is True
    assert invoke("order_inventory", {"action": "release", "order": order()})["status"] == "released"
    assert invoke("order_payments", {"action": "refund", "order": order()})["status"] == "refunded"


@pytest.mark.parametrize(
    ("name", "event", "error_type"),
    [
        (
            "order_payments",
            {"action": "charge", "order": order(payment_method="pm_card_declined")},
            "PaymentDeclinedError",
        ),
        (
            "order_payments",
            {"action": "charge", "order": order(payment_method="pm_card_unavailable")},
            "PaymentProviderUnavailableError",
        ),
        (
            "order_payments",
            {"action": "charge", "order": order(payment_method="pm_card_nope")},
            "InvalidOrderError",
        ),
        ("order_payments", {"action": "pay", "order": order()}, "UnknownActionError"),
        (
            "order_inventory",
            {"action": "reserve", "order": load_event("order-saga-out-of-stock.json")},
            "OutOfStockError",
        ),
        ("order_inventory", {"action": "reserve", "order": {"order_id": "ord-1"}}, "InvalidOrderError"),
        ("order_inventory", {"action": "restock", "order": order()}, "UnknownActionError"),
        (
            "order_notifications",
            {"action": "confirm", "order": load_event("order-saga-undeliverable-email.json")},
            "RecipientRejectedError",
        ),
        ("order_notifications", {"action": "email", "order": order()}, "UnknownActionError"),
    ],
)
def test_the_handlers_raise_the_error_types_the_workflow_matches_on(
    saga: SagaTables, name: str, event: dict[str, Any], error_type: str
) -> None:
    # Lambda reports a raised exception's class name as errorType; the state machine's Retry and Catch match it
    with pytest.raises(Exception) as raised:
        invoke(name, event)
    assert type(raised.value).__name__ == error_type


STEP_WRITES = [
    ("order_payments", "charge", "UpdateItem"),
    ("order_payments", "refund", "UpdateItem"),
    ("order_inventory", "reserve", "TransactWriteItems"),
    ("order_inventory", "release", "GetItem"),
    ("order_notifications", "confirm", "PutItem"),
]


@pytest.mark.parametrize(("name", "action", "operation"), STEP_WRITES)
@pytest.mark.parametrize(
    "code", ["ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"]
)
def test_an_aws_failure_that_outlasts_the_sdk_retries_is_a_transient_step_error(
    saga: SagaTables, aws_faults: AwsFaults, name: str, action: str, operation: str, code: str
) -> None:
    """The defect this guards: such a ClientError reached the workflow as `ClientError`, which no retry list
    names, so one throttled write failed the step for good: a charge went into compensation, a failed
    refund or release ended the saga in CompensationFailed."""
    # Given a step whose table call keeps failing for a moment (the SDK's own retries are spent)
    if action in ("refund", "release"):
        invoke(name, {"action": "charge" if name == "order_payments" else "reserve", "order": order()})
    aws_faults.fail("dynamodb", operation, code=code)
    # When the workflow invokes the step
    with pytest.raises(TransientError) as raised:
        invoke(name, {"action": action, "order": order()})
    # Then it fails with the name the step's retry list matches, the AWS error chained for the log
    assert aws_faults.injected == [f"{operation}:{code}"]
    assert type(raised.value).__name__ == "TransientError"
    assert code in str(raised.value)


def test_an_aws_failure_no_retry_fixes_still_fails_the_step(saga: SagaTables, aws_faults: AwsFaults) -> None:
    aws_faults.fail("dynamodb", "UpdateItem", code="AccessDeniedException")
    with pytest.raises(ClientError) as raised:
        invoke("order_payments", {"action": "charge", "order": order()})
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"


# -- the samples, run as the workflow runs them ---------------------------------------------------

MAX_ATTEMPTS = 3  # pm_card_flaky needs the workflow to retry a transient failure at least twice


def run_saga(data: dict[str, Any]) -> tuple[str, str | None]:
    """The workflow in miniature: retry transient errors, compensate what was done, notify on failure."""
    done: list[tuple[str, Any]] = []
    steps = [("order_payments", "charge", "refund"), ("order_inventory", "reserve", "release")]
    try:
        for name, action, compensation in steps:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    invoke(name, {"action": action, "order": data})
                    break
                except TransientError:
                    if attempt == MAX_ATTEMPTS:
                        raise
            done.append((name, compensation))
        invoke("order_notifications", {"action": "confirm", "order": data})
    except Exception as error:
        for name, compensation in reversed(done):
            invoke(name, {"action": compensation, "order": data})
        failure = {"Error": type(error).__name__, "Cause": json.dumps({"errorMessage": str(error)})}
        invoke("order_notifications", {"action": "notify_failure", "order": data, "failure": failure})
        return "failed", type(error).__name__
    return "confirmed", None


TAKEN = {"SKU-RED-MUG": 8, "SKU-TEA-100G": 9}
UNTOUCHED = {"SKU-RED-MUG": 10, "SKU-TEA-100G": 10}
# sample: (outcome, stock after, payment ledger status, emails in the outbox)
SAMPLE_ENDINGS: dict[str, tuple[tuple[str, str | None], dict[str, int], str | None, int]] = {
    "order-saga-happy.json": (("confirmed", None), TAKEN, "captured", 1),
    "order-saga-flaky-payment.json": (("confirmed", None), TAKEN, "captured", 1),
    "order-saga-declined.json": (("failed", "PaymentDeclinedError"), UNTOUCHED, "declined", 1),
    "order-saga-payment-unavailable.json": (
        ("failed", "PaymentProviderUnavailableError"),
        UNTOUCHED,
        "pending",
        1,
    ),
    "order-saga-out-of-stock.json": (("failed", "OutOfStockError"), UNTOUCHED, "refunded", 1),
    "order-saga-undeliverable-email.json": (("failed", "RecipientRejectedError"), UNTOUCHED, "refunded", 0),
}


def test_every_sample_has_an_expected_ending() -> None:
    assert sorted(SAMPLE_ENDINGS) == SAMPLES


@pytest.mark.parametrize("name", sorted(SAMPLE_ENDINGS))
def test_each_sample_ends_as_its_name_says(saga: SagaTables, name: str) -> None:
    outcome, stock_after, ledger_status, emails = SAMPLE_ENDINGS[name]
    # Given the sample execution input, When the workflow runs it
    data = load_event(name)
    assert run_saga(data) == outcome
    # Then stock, payment and outbox are what that ending implies
    assert saga.stock() == stock_after
    ledger = saga.payments.payment(data["order_id"]) or {}
    assert ledger.get("status", {}).get("S") == ledger_status
    assert len(saga.emails()) == emails
