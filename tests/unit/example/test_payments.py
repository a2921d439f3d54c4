"""The simulated payment provider: test-card behaviour, the ledger, idempotent charge and refund."""

from __future__ import annotations

import pytest

from asyncstack.runtime.errors import NonRetryableError, TransientError
from shared.payments import (
    BusinessRuleViolationError,
    InvalidOrderError,
    Payment,
    PaymentDeclinedError,
    PaymentProviderUnavailableError,
    SimulatedPaymentProvider,
)
from tests.unit.conftest import make_table

pytestmark = pytest.mark.unit


@pytest.fixture
def provider(aws: None) -> SimulatedPaymentProvider:
    return SimulatedPaymentProvider(make_table("payments", "pk"))


def charge(provider: SimulatedPaymentProvider, method: str, order_id: str = "ord-1") -> Payment:
    return provider.charge(order_id, 3399, "EUR", method)


def test_a_visa_charge_is_captured_and_recorded(provider: SimulatedPaymentProvider) -> None:
    # When an order paid by pm_card_visa is charged
    payment = charge(provider, "pm_card_visa")
    # Then the payment is captured for the order's amount
    assert payment.status == "captured"
    assert (payment.amount_cents, payment.currency) == (3399, "EUR")
    assert payment.payment_id.startswith("pay_")
    # And the ledger records it under payment#<order_id>
    item = provider.payment("ord-1")
    assert item is not None
    assert item["pk"]["S"] == "payment#ord-1"
    assert item["status"]["S"] == "captured"
    assert item["payment_id"]["S"] == payment.payment_id
    assert item["amount_cents"]["N"] == "3399"
    assert item["attempts"]["N"] == "1"


def test_a_repeated_charge_returns_the_same_payment_and_charges_once(
    provider: SimulatedPaymentProvider,
) -> None:
    # Given a captured charge
    first = charge(provider, "pm_card_visa")
    # When the workflow retries it (the first response was lost)
    again = charge(provider, "pm_card_visa")
    # Then it gets the same payment back and the ledger holds one payment for the order
    assert again == first
    assert len(provider.client.scan(TableName=provider.table)["Items"]) == 1
    assert provider.payment("ord-1")["payment_id"]["S"] == first.payment_id


def test_a_declined_card_is_a_business_error_and_nothing_is_captured(
    provider: SimulatedPaymentProvider,
) -> None:
    with pytest.raises(PaymentDeclinedError, match="card declined") as raised:
        charge(provider, "pm_card_declined")
    assert isinstance(raised.value, BusinessRuleViolationError)
    assert isinstance(raised.value, NonRetryableError)
    item = provider.payment("ord-1")
    assert item is not None
    assert (item["status"]["S"], item["attempts"]["N"]) == ("declined", "1")
    assert "payment_id" not in item


def test_a_flaky_card_fails_twice_then_succeeds_counting_attempts_in_the_table(
    provider: SimulatedPaymentProvider,
) -> None:
    # Given pm_card_flaky, each call standing for a separate Lambda invocation (a fresh provider)
    def fresh() -> SimulatedPaymentProvider:
        return SimulatedPaymentProvider(provider.table)

    # When the charge is attempted three times
    for attempt in (1, 2):
        with pytest.raises(PaymentProviderUnavailableError, match=f"attempt {attempt}") as raised:
            charge(fresh(), "pm_card_flaky")
        assert isinstance(raised.value, TransientError)
    payment = charge(fresh(), "pm_card_flaky")
    # Then the third is captured, and the ledger counted three attempts
    assert payment.status == "captured"
    item = provider.payment("ord-1")
    assert item is not None
    assert (item["attempts"]["N"], item["status"]["S"]) == ("3", "captured")
    # And the flakiness is per order: another order fails its first attempt again
    with pytest.raises(PaymentProviderUnavailableError):
        charge(fresh(), "pm_card_flaky", order_id="ord-2")


def test_an_unavailable_provider_is_always_transient(provider: SimulatedPaymentProvider) -> None:
    for _attempt in range(5):
        with pytest.raises(PaymentProviderUnavailableError):
            charge(provider, "pm_card_unavailable")
    item = provider.payment("ord-1")
    assert item is not None
    assert (item["status"]["S"], item["attempts"]["N"]) == ("pending", "5")
    assert "payment_id" not in item


def test_an_unknown_payment_method_is_an_invalid_order_and_touches_nothing(
    provider: SimulatedPaymentProvider,
) -> None:
    with pytest.raises(InvalidOrderError, match="pm_card_visa"):
        charge(provider, "pm_card_amex")
    assert provider.payment("ord-1") is None


def test_a_refund_refunds_the_captured_payment_once(provider: SimulatedPaymentProvider) -> None:
    # Given a captured payment
    payment = charge(provider, "pm_card_visa")
    # When it is refunded twice (the compensation retried)
    first = provider.refund("ord-1")
    second = provider.refund("ord-1")
    # Then both answers name the payment, and the ledger says refunded
    assert (first.payment_id, first.status) == (payment.payment_id, "refunded")
    assert second == first
    item = provider.payment("ord-1")
    assert item is not None
    assert item["status"]["S"] == "refunded"
    assert "refunded_at" in item


def test_a_refund_without_a_charge_has_nothing_to_refund(provider: SimulatedPaymentProvider) -> None:
    assert provider.refund("ord-never").status == "nothing_to_refund"
    assert provider.refund("ord-never").payment_id is None


def test_a_refund_after_failed_attempts_has_nothing_to_refund(provider: SimulatedPaymentProvider) -> None:
    with pytest.raises(PaymentProviderUnavailableError):
        charge(provider, "pm_card_flaky")
    refund = provider.refund("ord-1")
    assert (refund.payment_id, refund.status) == (None, "nothing_to_refund")
    assert provider.refund("ord-1") == refund
    assert provider.payment("ord-1")["status"]["S"] == "voided"


def test_a_charge_after_the_refund_is_refused(provider: SimulatedPaymentProvider) -> None:
    # Given an order the saga compensated before its (late) charge arrived, and one refunded after capture
    provider.refund("ord-late")
    charge(provider, "pm_card_visa", order_id="ord-refunded")
    provider.refund("ord-refunded")
    # When either is charged (again)
    # Then nothing is captured: a cancelled order takes no money
    for order_id in ("ord-late", "ord-refunded"):
        with pytest.raises(InvalidOrderError, match="cancelled"):
            charge(provider, "pm_card_visa", order_id=order_id)
    assert provider.payment("ord-late")["status"]["S"] == "voided"
    assert provider.payment("ord-refunded")["status"]["S"] == "refunded"
