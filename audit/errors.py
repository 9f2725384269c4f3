"""The audit trail's own failure."""

from __future__ import annotations


class AuditUnavailable(ConnectionError):
    """The audit store could not take a record (in time)."""
