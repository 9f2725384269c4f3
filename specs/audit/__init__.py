"""Audit trail contracts: admins and auditors read their tenant's audit events."""

from specs.audit.get_event import GetEvent
from specs.audit.list_events import ListEvents

__all__ = ["GetEvent", "ListEvents"]
