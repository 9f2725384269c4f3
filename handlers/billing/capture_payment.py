"""Handler for billing.capturePayment: charge the invoice's amount and mark it paid."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import structlog

from handlers.billing.invoices_store import InvoiceStore
from handlers.billing.stripe_gateway import (
    PaymentDeclined,
    PaymentMethodUnusable,
    StripeGateway,
)
from registry.context import Context
from registry.money import to_minor
from specs.billing.capture_payment import CapturePayment, CapturePaymentInput, PaymentResult
from specs.billing.errors import (
    AMOUNT_MISMATCH,
    CARD_DECLINED,
    INVOICE_ALREADY_PAID,
    INVOICE_NOT_FOUND,
    PAYMENT_IN_PROGRESS,
    PAYMENT_METHOD_INVALID,
)
from specs.billing.models import InvoiceStatus

log = structlog.get_logger("specops.billing")

OPEN, PROCESSING, PAID = InvoiceStatus.OPEN, InvoiceStatus.PROCESSING, InvoiceStatus.PAID

#: How long an invoice stays processing, unmoved, before the same capture (same payment
#: method and amount) may take it over: its process is then taken to have crashed. Twice
#: the contract's deadline, after which a live capture has given the invoice back.
STALLED_CAPTURE_SECONDS = 2 * CapturePayment.timeout_seconds


def stripe_idempotency_key(tenant_id: str, invoice_id: str, method: str, minor: int) -> str:
    """The same invoice paid with the same method and amount is the same Stripe request.

    Everything that request sends is derived from what the key is derived from (see
    ``charge_metadata``): Stripe answers a key it has seen with the first request's result
    only when the parameters are the same, and with an idempotency error otherwise. A
    retry after a lost response must get the charge that was made, not an error beside an
    invoice left open."""
    digest = hashlib.sha256(f"{tenant_id}|{invoice_id}|{method}|{minor}".encode()).hexdigest()
    return f"specops-capture-{digest[:32]}"


def charge_metadata(tenant_id: str, invoice_id: str) -> dict[str, str]:
    """The PaymentIntent's metadata: the invoice it pays, and nothing that differs between
    two requests for the same charge (a request id would; the audit trail links requests
    to invoices and the invoice to the PaymentIntent)."""
    return {"invoiceId": invoice_id, "tenantId": tenant_id}


class CapturePaymentHandler:
    """Policy has already loaded the invoice and checked the caller owns it.

    The invoice moves open -> processing atomically before Stripe is called, so two
    concurrent captures cannot both charge; a decline or failure moves it back to open.
    An invoice left processing by a crashed process is taken over by a retry of the same
    capture once it has stalled for ``stalled_seconds``: that retry sends Stripe the same
    request under the same idempotency key, so the charge is made (or found) once.
    """

    def __init__(
        self,
        store: InvoiceStore,
        stripe: StripeGateway,
        *,
        stalled_seconds: float = STALLED_CAPTURE_SECONDS,
    ) -> None:
        self.store = store
        self.stripe = stripe
        self.stalled_seconds = stalled_seconds

    async def __call__(self, data: CapturePaymentInput, ctx: Context) -> PaymentResult:
        tenant = ctx.tenant_id
        invoice = await self.store.get(tenant, data.invoice_id)
        if invoice is None:
            raise INVOICE_NOT_FOUND(f"No invoice {data.invoice_id}")
        if invoice.status is PAID:
            raise INVOICE_ALREADY_PAID(f"Invoice {invoice.id} was paid ({invoice.transaction_id})")
        minor = to_minor(data.amount, data.currency)
        if data.currency != invoice.currency or minor != invoice.amount_minor:
            raise AMOUNT_MISMATCH(
                f"Invoice {invoice.id} is for {invoice.view().amount} {invoice.currency.upper()}"
            )
        self.stripe.client()  # fail fast, before locking the invoice, when unconfigured
        key = stripe_idempotency_key(tenant, invoice.id, data.payment_method_id, minor)
        stalled_before = datetime.now(UTC) - timedelta(seconds=self.stalled_seconds)
        if not await self.store.start_capture(
            tenant, invoice.id, key, stalled_before=stalled_before
        ):
            current = await self.store.get(tenant, invoice.id)
            if current is not None and current.status is PAID:
                raise INVOICE_ALREADY_PAID(f"Invoice {invoice.id} was paid")
            raise PAYMENT_IN_PROGRESS(
                f"A payment for invoice {invoice.id} is in progress. Should it stall, the "
                f"same payment (same payment method) may be retried once it has not moved "
                f"for {self.stalled_seconds:g} s"
            )
        settled = False
        try:
            charge = await self.stripe.charge(
                amount_minor=minor,
                currency=data.currency,
                payment_method_id=data.payment_method_id,
                idempotency_key=key,
                metadata=charge_metadata(tenant, invoice.id),
            )
            if charge.status == "succeeded":
                # From open too: the money is taken, even if this capture stalled and a
                # retry of it failed and gave the invoice back meanwhile.
                settled = await self.store.transition(
                    tenant, invoice.id, from_status=(PROCESSING, OPEN), to_status=PAID,
                    transaction_id=charge.transaction_id,
                )  # fmt: skip
                if not settled:
                    log.error(
                        "capture_succeeded_on_a_paid_invoice",
                        invoice_id=invoice.id,
                        transaction_id=charge.transaction_id,
                    )
            elif charge.status == "processing":
                # Stripe settles it later; the webhook issue will move it to paid.
                settled = True
        except PaymentDeclined as exc:
            raise CARD_DECLINED(str(exc)) from None
        except PaymentMethodUnusable as exc:
            raise PAYMENT_METHOD_INVALID(str(exc)) from None
        finally:
            if not settled:
                await self.store.transition(
                    tenant, invoice.id, from_status=PROCESSING, to_status=OPEN
                )
        return PaymentResult(
            transaction_id=charge.transaction_id,
            status=charge.status,
            receipt_url=charge.receipt_url,
        )
