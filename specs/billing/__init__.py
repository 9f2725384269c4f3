"""Billing contracts: invoices and paying them."""

from specs.billing.capture_payment import CapturePayment
from specs.billing.create_invoice import CreateInvoice
from specs.billing.get_invoice import GetInvoice
from specs.billing.list_invoices import ListInvoices

__all__ = ["CapturePayment", "CreateInvoice", "GetInvoice", "ListInvoices"]
