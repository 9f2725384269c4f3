"""Billing models shared by several contracts."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from registry.fields import Currency, PositiveAmount, Timestamp
from registry.model import WireModel
from registry.money import exponent, to_minor


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PROCESSING = "processing"
    PAID = "paid"


class Invoice(WireModel):
    """An invoice as callers see it."""

    id: str = Field(description="Invoice id, e.g. inv_...")
    owner_id: str = Field(description="The user who owes and may pay it")
    amount: Decimal = Field(description="Amount in major units, as a decimal string")
    amount_minor: int = Field(description="Amount in minor units (cents)")
    currency: str
    status: InvoiceStatus
    description: str | None = None
    transaction_id: str | None = Field(None, description="Payment id once paid")
    paid_at: Timestamp | None = None
    created_at: Timestamp


class PricedInput(WireModel):
    """An input with an amount in major units and its currency, checked to fit together."""

    currency: Currency
    amount: PositiveAmount

    @field_validator("amount")
    @classmethod
    def amount_fits_currency(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is None:
            return amount
        try:
            to_minor(amount, currency)
        except ValueError:
            raise PydanticCustomError(
                "currency_precision",
                "{currency} amounts have at most {places} decimal places",
                {"currency": currency.upper(), "places": exponent(currency)},
            ) from None
        return amount
