"""billing.listInvoices: the caller's invoices, newest first, cursor-paginated."""

from __future__ import annotations

from pydantic import Field

from registry.contract import query
from registry.fields import Identifier, page_cursor
from registry.model import WireModel
from specs.billing.models import Invoice, InvoiceStatus


class ListInvoicesInput(WireModel):
    limit: int = Field(20, ge=1, le=100, description="Page size")
    cursor: str | None = page_cursor()
    status: InvoiceStatus | None = None
    owner_id: Identifier | None = Field(
        None, description="Whose invoices; others than the caller need invoice:list_any"
    )


class InvoicePage(WireModel):
    items: list[Invoice]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


ListInvoices = query(
    key="billing.listInvoices",
    version="1.0.0",
    title="List invoices",
    description="List invoices of the caller (or, with invoice:list_any, of the tenant)",
    goal="Let users find what they owe and what they paid",
    context="Called by account pages and reconciliation jobs",
    owners=["team-billing"],
    tags=["invoices"],
    stability="stable",
    input=ListInvoicesInput,
    output=InvoicePage,
    auth="user",
    rules=[("invoice", "list")],
)
