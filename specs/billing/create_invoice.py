"""billing.createInvoice: open an invoice for a user of the caller's tenant."""

from __future__ import annotations

from pydantic import Field

from registry.contract import command
from registry.fields import Identifier, Text
from specs.billing.models import Invoice, PricedInput


class CreateInvoiceInput(PricedInput):
    description: Text | None = None
    owner_id: Identifier | None = Field(
        None, description="Who owes it; defaults to the caller. Others need invoice:assign."
    )


CreateInvoice = command(
    key="billing.createInvoice",
    version="1.0.0",
    title="Create invoice",
    description="Open an invoice in the caller's tenant",
    goal="Record an amount a user owes so that it can be paid",
    context="Called by a billing back office or by the user starting a purchase",
    owners=["team-billing"],
    tags=["invoices"],
    stability="stable",
    input=CreateInvoiceInput,
    output=Invoice,
    auth="user",
    rules=[("invoice", "create")],
)
