"""The table of contents: every operation this server offers, and what implements it."""

from __future__ import annotations

from handlers.billing.capture_payment import CapturePaymentHandler
from handlers.billing.invoices import InvoiceHandlers
from handlers.billing.invoices_store import InvoiceStore
from handlers.billing.stripe_gateway import StripeGateway
from handlers.system.ping import ping
from registry.registry import Registry, install_op, install_resource
from specops.settings import Settings
from specs import billing, system
from specs.billing.errors import INVOICE_NOT_FOUND
from storage.database import Database


def build_registry(db: Database, settings: Settings) -> Registry:
    registry = Registry()

    install_op(registry, system.Ping, ping)

    invoices = InvoiceHandlers(InvoiceStore(db))
    stripe = StripeGateway(settings.stripe_secret_key, api_base=settings.stripe_api_base)
    install_resource(registry, "invoice", invoices.load_invoice, not_found=INVOICE_NOT_FOUND)
    install_op(registry, billing.CreateInvoice, invoices.create_invoice)
    install_op(registry, billing.GetInvoice, invoices.get_invoice)
    install_op(registry, billing.ListInvoices, invoices.list_invoices)
    install_op(registry, billing.CapturePayment, CapturePaymentHandler(invoices.store, stripe))

    registry.check()
    return registry
