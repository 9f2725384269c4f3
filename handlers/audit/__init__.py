"""Audit trail handlers."""
