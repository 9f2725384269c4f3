"""The table of contents: every operation this server offers, and what implements it."""

from __future__ import annotations

import importlib
from collections.abc import Callable

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

    for installer in settings.extra_operations.split(","):
        if installer.strip():
            load_installer(installer.strip())(registry, db, settings)

    registry.check()
    return registry


def load_installer(path: str) -> Callable[[Registry, Database, Settings], None]:
    """Import ``module:function`` named by SPECOPS_EXTRA_OPERATIONS."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"extra operations installer {path!r} must look like 'module:function'")
    installer = getattr(importlib.import_module(module_name), attribute)
    if not callable(installer):
        raise ValueError(f"{path} is not callable")
    return installer  # type: ignore[no-any-return]
