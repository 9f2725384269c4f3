"""Domain errors the audit contracts declare."""

from registry.errors import ErrorSpec

AUDIT_EVENT_NOT_FOUND = ErrorSpec(
    "AUDIT_EVENT_NOT_FOUND", 404, "No such audit event among those the caller may read"
)
