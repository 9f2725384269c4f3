"""Handler for billing.capturePayment: charge the invoice's amount and mark it paid."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from handlers.billing.invoices_store import CaptureHold, InvoiceStore
from handlers.billing.stripe_gateway import (
    ChargeOutcomeUnknown,
    ChargeResult,
    NotCharged,
    PaymentDeclined,
    PaymentMethodUnusable,
    StripeGateway,
)
from registry.context import Context
from registry.errors import CATALOGUE, OperationError
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

#: How long an invoice stays processing, unmoved, before another capture may take it over:
#: its process is then taken to have crashed. Twice the contract's deadline, by which a
#: live capture has recorded Stripe's answer, or that none came.
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

    The invoice moves open -> processing atomically before Stripe is called, held by the
    capture's Stripe idempotency key and payment method, so two captures cannot both
    charge. Then, by Stripe's answer: charged, the invoice is paid; refused (declined,
    unusable method) or never asked, it is given back (open); no answer (timeout, dropped
    connection, 5xx), it stays held, marked unknown, since Stripe may have charged, and
    the caller gets a retryable PAYMENT_IN_PROGRESS.

    The next capture of an invoice whose outcome is unknown, or whose capture has stalled
    for ``stalled_seconds`` (its process crashed), takes the hold over and first sends
    Stripe the held request again, under its idempotency key: Stripe answers with the
    charge it made, or makes it now. Only if that request charged nothing may another
    payment method be charged.
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
        method = data.payment_method_id
        capture = Capture(tenant, invoice.id, minor, data.currency)
        key = stripe_idempotency_key(tenant, invoice.id, method, minor)
        hold = await self._hold(capture, key, method)
        if hold.key != key:
            await self._settle_earlier(capture, hold)
            hold = await self._hold(capture, key, method)
            if hold.key != key:  # yet another capture's outcome turned out unknown meanwhile
                await self.store.outcome_unknown(tenant, invoice.id, hold.key)
                raise self._in_progress(invoice.id)
        try:  # this capture's own hold; kept before 0005, it may lack the method
            charge = await self._charge(capture, CaptureHold(key, method))
        except NotCharged as exc:
            raise _refusal(exc) from None
        return PaymentResult(
            transaction_id=charge.transaction_id,
            status=charge.status,
            receipt_url=charge.receipt_url,
        )

    async def _hold(self, capture: Capture, key: str, method: str) -> CaptureHold:
        """The invoice's hold: this capture's, or an earlier one's taken over."""
        stalled_before = datetime.now(UTC) - timedelta(seconds=self.stalled_seconds)
        hold = await self.store.start_capture(
            capture.tenant_id, capture.invoice_id, key, method, stalled_before=stalled_before
        )
        if hold is not None:
            return hold
        current = await self.store.get(capture.tenant_id, capture.invoice_id)
        if current is not None and current.status is PAID:
            raise INVOICE_ALREADY_PAID(
                f"Invoice {capture.invoice_id} was paid ({current.transaction_id})"
            )
        raise self._in_progress(capture.invoice_id)

    async def _settle_earlier(self, capture: Capture, hold: CaptureHold) -> None:
        """Learn what an earlier capture, whose hold this one took over, did: send Stripe
        its very request again. Returns only if it charged nothing (the invoice is then
        open again); raises what the caller must be told otherwise."""
        if hold.method is None:  # held before its payment method was kept: cannot resend
            await self.store.outcome_unknown(capture.tenant_id, capture.invoice_id, hold.key)
            raise PAYMENT_IN_PROGRESS(
                f"A payment for invoice {capture.invoice_id} may have gone through; only "
                f"the same payment retried (same payment method) can settle it"
            )
        try:
            earlier = await self._charge(capture, hold)
        except NotCharged:
            return
        if earlier.status == "succeeded":
            raise INVOICE_ALREADY_PAID(
                f"Invoice {capture.invoice_id} was paid by an earlier payment "
                f"({earlier.transaction_id})"
            )
        if earlier.status == "processing":
            raise self._in_progress(capture.invoice_id)

    async def _charge(self, capture: Capture, hold: CaptureHold) -> ChargeResult:
        """Send Stripe the held capture's request, and record its outcome on the invoice:
        paid, given back (raising ``NotCharged``), or held with the outcome unknown
        (raising PAYMENT_IN_PROGRESS)."""
        assert hold.method is not None
        tenant, invoice_id = capture.tenant_id, capture.invoice_id
        try:
            charge = await self.stripe.charge(
                amount_minor=capture.amount_minor,
                currency=capture.currency,
                payment_method_id=hold.method,
                idempotency_key=hold.key,
                metadata=charge_metadata(tenant, invoice_id),
            )
        except NotCharged:
            await self.store.release(tenant, invoice_id, hold.key)
            raise
        except ChargeOutcomeUnknown:
            await self.store.outcome_unknown(tenant, invoice_id, hold.key)
            raise PAYMENT_IN_PROGRESS(
                f"Stripe did not answer the payment of invoice {invoice_id}, so whether it "
                f"went through is not known yet. The invoice stays held: retry, with any "
                f"payment method, to settle it; nothing is charged twice"
            ) from None
        except asyncio.CancelledError:  # the deadline passed while Stripe was asked
            await self.store.outcome_unknown(tenant, invoice_id, hold.key)
            raise
        if charge.status == "succeeded":
            await self._paid(capture, charge)
        elif charge.status != "processing":  # Stripe settles "processing" later (webhook)
            await self.store.release(tenant, invoice_id, hold.key)
        return charge

    async def _paid(self, capture: Capture, charge: ChargeResult) -> None:
        # From open too: the money is taken, whatever happened to the hold meanwhile.
        if await self.store.transition(
            capture.tenant_id, capture.invoice_id, from_status=(PROCESSING, OPEN),
            to_status=PAID, transaction_id=charge.transaction_id,
        ):  # fmt: skip
            return
        current = await self.store.get(capture.tenant_id, capture.invoice_id)
        if current is None or current.transaction_id != charge.transaction_id:
            log.error(
                "capture_succeeded_on_a_paid_invoice",
                invoice_id=capture.invoice_id,
                transaction_id=charge.transaction_id,
            )

    def _in_progress(self, invoice_id: str) -> OperationError:
        return PAYMENT_IN_PROGRESS(
            f"A payment for invoice {invoice_id} is in progress. Retry once it has "
            f"finished, or, should it stall, after {self.stalled_seconds:g} s: the retry "
            f"then settles it with Stripe first"
        )


@dataclass(frozen=True, slots=True)
class Capture:
    """What every Stripe request of one invoice's captures shares."""

    tenant_id: str
    invoice_id: str
    amount_minor: int
    currency: str


def _refusal(exc: NotCharged) -> OperationError:
    """The caller's answer when Stripe charged nothing."""
    if isinstance(exc, PaymentDeclined):
        return CARD_DECLINED(str(exc))
    if isinstance(exc, PaymentMethodUnusable):
        return PAYMENT_METHOD_INVALID(str(exc))
    return CATALOGUE.UPSTREAM_UNAVAILABLE(str(exc))
