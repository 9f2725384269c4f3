"""WireModel conventions and the billing input models."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from registry.pipeline import input_issues
from specs.billing.capture_payment import CapturePaymentInput, PaymentResult
from specs.billing.create_invoice import CreateInvoiceInput

VALID: dict[str, Any] = {
    "invoiceId": "inv_123",
    "amount": "12.50",
    "currency": "usd",
    "paymentMethodId": "pm_card_visa",
}


def capture(**changes: Any) -> CapturePaymentInput:
    return CapturePaymentInput.model_validate({**VALID, **changes})


def refused(**changes: Any) -> list[tuple[str, str]]:
    """``(path, code)`` of every issue the input is refused with."""
    with pytest.raises(ValidationError) as info:
        capture(**changes)
    return [(i.path, i.code) for i in input_issues(info.value)]


def test_camel_case_on_the_wire() -> None:
    model = capture()
    assert model.invoice_id == "inv_123"
    assert model.payment_method_id == "pm_card_visa"
    dumped = model.model_dump(mode="json")
    assert set(dumped) == {"invoiceId", "amount", "currency", "paymentMethodId"}
    assert json.loads(model.model_dump_json())["paymentMethodId"] == "pm_card_visa"
    schema = CapturePaymentInput.model_json_schema()
    assert set(schema["properties"]) == {"invoiceId", "amount", "currency", "paymentMethodId"}
    assert PaymentResult(transaction_id="pi_1", status="succeeded").model_dump() == {
        "transactionId": "pi_1",
        "status": "succeeded",
        "receiptUrl": None,
    }


def test_snake_case_is_accepted_too() -> None:
    model = CapturePaymentInput.model_validate(
        {
            "invoice_id": "inv_1",
            "amount": 3,
            "currency": "usd",
            "payment_method_id": "pm_1",
        }
    )
    assert (model.invoice_id, model.payment_method_id) == ("inv_1", "pm_1")


def test_extra_keys_are_refused() -> None:
    assert refused(bogus=1) == [("bogus", "extra_forbidden")]
    assert refused(invoiceID="inv_2") == [("invoiceID", "extra_forbidden")]


def test_models_are_frozen() -> None:
    model = capture()
    with pytest.raises(ValidationError):
        model.amount = Decimal("1")  # type: ignore[misc]


def test_too_many_decimals_for_the_currency_are_refused_at_amount() -> None:
    with pytest.raises(ValidationError) as info:
        capture(amount=12.555)
    issues = input_issues(info.value)
    assert [(i.path, i.code) for i in issues] == [("amount", "currency_precision")]
    assert issues[0].message == "USD amounts have at most 2 decimal places"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (12.5, "usd", Decimal("12.5")),
        ("12.50", "usd", Decimal("12.50")),
        (12.55, "usd", Decimal("12.55")),  # a float is read through its shortest repr
        (12, "usd", Decimal("12")),
        (1500, "jpy", Decimal("1500")),
        ("12.555", "kwd", Decimal("12.555")),
        ("999999999999", "usd", Decimal("999999999999")),
    ],
)
def test_amounts_that_fit_are_accepted(amount: Any, currency: str, expected: Decimal) -> None:
    assert capture(amount=amount, currency=currency).amount == expected


@pytest.mark.parametrize("currency", ["xyz", "XYZ", "eek"])
def test_only_currencies_stripe_supports_are_accepted(currency: str) -> None:
    assert refused(currency=currency) == [("currency", "currency_unsupported")]
    with pytest.raises(ValidationError) as info:
        CreateInvoiceInput.model_validate({"amount": "25.00", "currency": currency})
    [issue] = input_issues(info.value)
    assert (issue.path, issue.code) == ("currency", "currency_unsupported")
    assert issue.message == f"{currency.upper()} is not a currency Stripe supports"
    assert capture(currency="EUR").currency == "eur"


def test_amount_precision_follows_the_currency() -> None:
    assert refused(amount="12.5", currency="jpy") == [("amount", "currency_precision")]
    assert refused(amount="1.2345", currency="kwd") == [("amount", "decimal_max_places")]


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (-1, "greater_than"),
        ("-0.01", "greater_than"),
        (0, "greater_than"),
        ("0.00", "greater_than"),
        (float("nan"), "finite_number"),
        ("NaN", "finite_number"),
        ("Infinity", "finite_number"),
        (float("inf"), "finite_number"),
        ("999999999999.01", "less_than_equal"),
        (1e13, "less_than_equal"),
        ("1e400", "decimal_max_digits"),
        ("twelve", "decimal_parsing"),
        (None, "decimal_type"),
    ],
)
def test_bad_amounts_are_refused(amount: Any, code: str) -> None:
    assert refused(amount=amount) == [("amount", code)]


def test_a_nan_in_json_is_refused() -> None:
    body = json.dumps({**VALID, "amount": float("nan")})  # json.dumps writes NaN
    with pytest.raises(ValidationError) as info:
        CapturePaymentInput.model_validate_json(body)
    assert [i.path for i in input_issues(info.value)] == ["amount"]


@pytest.mark.parametrize("currency", ["USD", "Usd", "usd"])
def test_currency_case_is_normalised(currency: str) -> None:
    assert capture(currency=currency).currency == "usd"
    assert capture(currency=currency.upper(), amount="12.55").amount == Decimal("12.55")


@pytest.mark.parametrize("currency", ["us", "usdd", "u$d", "", "12a"])
def test_bad_currencies_are_refused(currency: str) -> None:
    assert ("currency", "string_pattern_mismatch") in refused(currency=currency)


@pytest.mark.parametrize("field", ["invoiceId", "paymentMethodId"])
@pytest.mark.parametrize("value", ["inv\x00", "\x00", "a\x00b"])
def test_nul_characters_are_refused(field: str, value: str) -> None:
    assert refused(**{field: value}) == [(field, "string_pattern_mismatch")]


@pytest.mark.parametrize("field", ["invoiceId", "paymentMethodId"])
def test_blank_and_oversized_strings_are_refused(field: str) -> None:
    assert refused(**{field: "   "}) == [(field, "string_too_short")]
    assert refused(**{field: "x" * 256}) == [(field, "string_too_long")]
    assert getattr(capture(**{field: "  inv_9  "}), _snake(field)) == "inv_9"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def test_create_invoice_text_fields_refuse_nul() -> None:
    base = {"amount": "1", "currency": "usd"}
    with pytest.raises(ValidationError) as info:
        CreateInvoiceInput.model_validate({**base, "description": "a\x00b"})
    assert [i.path for i in input_issues(info.value)] == ["description"]
    with pytest.raises(ValidationError) as info:
        CreateInvoiceInput.model_validate({**base, "ownerId": "bob\x00"})
    assert [i.path for i in input_issues(info.value)] == ["ownerId"]
    assert CreateInvoiceInput.model_validate({**base, "ownerId": "bob"}).owner_id == "bob"
