"""Handlers for billing.createInvoice, billing.getInvoice and billing.listInvoices."""

from __future__ import annotations

from handlers.billing.invoices_store import InvoiceStore
from registry.actor import Actor
from registry.context import Context
from registry.errors import CATALOGUE
from registry.money import to_minor
from registry.registry import ResourceAttrs
from specs.billing.create_invoice import CreateInvoiceInput
from specs.billing.errors import INVOICE_NOT_FOUND
from specs.billing.get_invoice import GetInvoiceInput
from specs.billing.list_invoices import InvoicePage, ListInvoicesInput
from specs.billing.models import Invoice
from storage import cursors


class InvoiceHandlers:
    """Invoice operations over one store; every call stays inside the caller's tenant."""

    def __init__(self, store: InvoiceStore) -> None:
        self.store = store

    async def load_invoice(self, invoice_id: str, actor: Actor) -> ResourceAttrs | None:
        """Resource loader for policy conditions on ``invoice``."""
        if actor.tenant_id is None:
            return None
        row = await self.store.get(actor.tenant_id, invoice_id)
        if row is None:
            return None
        return ResourceAttrs(row.id, row.tenant_id, row.owner_id)

    async def create_invoice(self, data: CreateInvoiceInput, ctx: Context) -> Invoice:
        owner_id = data.owner_id or ctx.actor.id
        if owner_id != ctx.actor.id and not await ctx.allowed("invoice", "assign"):
            raise CATALOGUE.FORBIDDEN("Creating an invoice for another user needs invoice:assign")
        row = await self.store.create(
            tenant_id=ctx.tenant_id,
            owner_id=owner_id,
            amount_minor=to_minor(data.amount, data.currency),
            currency=data.currency,
            description=data.description,
        )
        return row.view()

    async def get_invoice(self, data: GetInvoiceInput, ctx: Context) -> Invoice:
        row = await self.store.get(ctx.tenant_id, data.invoice_id)
        if row is None:
            raise INVOICE_NOT_FOUND(f"No invoice {data.invoice_id}")
        return row.view()

    async def list_invoices(self, data: ListInvoicesInput, ctx: Context) -> InvoicePage:
        owner_id = data.owner_id or ctx.actor.id
        if owner_id != ctx.actor.id and not await ctx.allowed("invoice", "list_any"):
            raise CATALOGUE.FORBIDDEN("Listing another user's invoices needs invoice:list_any")
        after = cursors.after(data.cursor)
        rows, more = await self.store.page(
            ctx.tenant_id, owner_id=owner_id, status=data.status, limit=data.limit, after=after
        )
        return InvoicePage(
            items=[r.view() for r in rows],
            next_cursor=cursors.next_cursor(rows, more),
        )
