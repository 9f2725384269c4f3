"""billing.capturePayment: the seed's "first operation", unchanged in shape."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from registry.contract import RateLimit, command
from registry.fields import NonEmptyString, Sensitive
from registry.model import WireModel
from specs.billing.errors import (
    AMOUNT_MISMATCH,
    CARD_DECLINED,
    INVOICE_ALREADY_PAID,
    INVOICE_NOT_FOUND,
    PAYMENT_IN_PROGRESS,
    PAYMENT_METHOD_INVALID,
)
from specs.billing.models import PricedInput


class CapturePaymentInput(PricedInput):
    invoice_id: NonEmptyString
    #: Card data by reference: it never reaches an audit record or a log.
    payment_method_id: Annotated[NonEmptyString, Sensitive()] = Field(
        description="Stripe PaymentMethod id, pm_..."
    )


class PaymentResult(WireModel):
    transaction_id: str
    status: str = Field(description="Stripe PaymentIntent status, e.g. succeeded")
    receipt_url: str | None = None


CapturePayment = command(
    key="billing.capturePayment",
    version="1.0.0",
    title="Capture payment",
    description="Process a payment for an invoice",
    goal="Capture funds from customer payment method",
    context="Called when customer confirms purchase",
    owners=["team-billing"],
    tags=["payments", "stripe", "critical"],
    stability="stable",
    input=CapturePaymentInput,
    output=PaymentResult,
    errors=[
        INVOICE_NOT_FOUND,
        INVOICE_ALREADY_PAID,
        PAYMENT_IN_PROGRESS,
        AMOUNT_MISMATCH,
        CARD_DECLINED,
        PAYMENT_METHOD_INVALID,
    ],
    auth="user",
    rules=[("invoice", "pay", "owner")],
    rate_limit=RateLimit(rpm=30),  # per actor; SPECOPS_RATE_LIMITS overrides
)
