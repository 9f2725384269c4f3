"""The audit trail: records, sinks (database table and structlog line)."""
