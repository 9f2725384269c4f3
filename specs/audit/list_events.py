"""audit.listEvents: the audit events of the caller's tenant, newest first, paginated."""

from __future__ import annotations

from pydantic import Field

from registry.contract import query
from registry.fields import UtcDateTime, page_cursor
from registry.model import WireModel
from specs.audit.models import (
    AuditEvent,
    FilterText,
    OperationKey,
    OutcomeCode,
    TraceId,
)


class ListEventsInput(WireModel):
    tenant_id: FilterText | None = Field(
        None,
        description="Whose events. Omitted: the caller's tenant's (a platform auditor's: "
        "every tenant's). Another tenant than the caller's needs a caller of the platform "
        "tenant granted audit:read_any_tenant",
    )
    actor_id: FilterText | None = None
    operation_key: OperationKey | None = None
    outcome: OutcomeCode | None = None
    transport: FilterText | None = None
    request_id: FilterText | None = None
    trace_id: TraceId | None = None
    since: UtcDateTime | None = Field(None, description="Events at or after this time")
    until: UtcDateTime | None = Field(
        None, description="Events before this time (none when it is not after since)"
    )
    limit: int = Field(50, ge=1, le=200, description="Page size")
    cursor: str | None = page_cursor()


class AuditEventPage(WireModel):
    items: list[AuditEvent] = Field(description="Newest first (by seq)")
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page")


ListEvents = query(
    key="audit.listEvents",
    version="1.0.0",
    title="List audit events",
    description="List the audit events of the caller's tenant, newest first, filtered by "
    "actor, operation, outcome, transport, request, trace and time. Callers of the "
    "platform tenant (SPECOPS_AUDIT_PLATFORM_TENANT) granted audit:read_any_tenant read "
    "every tenant's events, and those of anonymous callers; anyone else naming another "
    "tenant is refused (FORBIDDEN). Pages stay stable while new events are written.",
    goal="Let admins and auditors see who did what, when, and with which result",
    context="Called by a tenant admin or auditor, from an admin console or an investigation",
    owners=["team-platform"],
    tags=["audit"],
    stability="beta",
    input=ListEventsInput,
    output=AuditEventPage,
    auth="user",
    rules=[("audit", "read")],
)
