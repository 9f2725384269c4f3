"""Billing handlers: invoices and payments."""
