"""billing.getInvoice: one invoice of the caller's tenant."""

from __future__ import annotations

from registry.contract import query
from registry.fields import NonEmptyString
from registry.model import WireModel
from specs.billing.errors import INVOICE_NOT_FOUND
from specs.billing.models import Invoice


class GetInvoiceInput(WireModel):
    invoice_id: NonEmptyString


GetInvoice = query(
    key="billing.getInvoice",
    version="1.0.0",
    title="Get invoice",
    description="Read one invoice of the caller's tenant",
    goal="Show an invoice's amount and payment state",
    context="Called before paying, and to confirm a payment",
    owners=["team-billing"],
    tags=["invoices"],
    stability="stable",
    input=GetInvoiceInput,
    output=Invoice,
    errors=[INVOICE_NOT_FOUND],
    auth="user",
    rules=[("invoice", "read", "tenant")],
)
