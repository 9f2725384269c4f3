"""The input digest (idempotency fingerprint, audit) is the same for the same request."""

from __future__ import annotations

from registry.pipeline import input_digest
from specs.billing.capture_payment import CapturePaymentInput


def digest_of(**fields: object) -> str:
    return input_digest(CapturePaymentInput.model_validate(fields))


def test_the_spelling_of_an_amount_does_not_change_the_digest() -> None:
    base = {"invoiceId": "inv_1", "currency": "usd", "paymentMethodId": "pm_card_visa"}
    assert digest_of(amount=12.5, **base) == digest_of(amount="12.50", **base)
    assert digest_of(amount="12.5", **base) == digest_of(amount="12.500", **base)


def test_a_different_amount_or_field_changes_the_digest() -> None:
    base = {"invoiceId": "inv_1", "currency": "usd", "paymentMethodId": "pm_card_visa"}
    assert digest_of(amount=12.5, **base) != digest_of(amount=12.51, **base)
    assert digest_of(amount=12.5, **base) != digest_of(
        amount=12.5, **{**base, "invoiceId": "inv_2"}
    )
