"""audit.getEvent: one audit event, by its position in the audit chain."""

from __future__ import annotations

from registry.contract import query
from registry.model import WireModel
from specs.audit.errors import AUDIT_EVENT_NOT_FOUND
from specs.audit.models import AuditEvent, Seq


class GetEventInput(WireModel):
    seq: Seq


GetEvent = query(
    key="audit.getEvent",
    version="1.0.0",
    title="Get audit event",
    description="Read one audit event by its seq. An event of another tenant is not found, "
    "unless the caller belongs to the platform tenant and holds audit:read_any_tenant.",
    goal="Let admins and auditors inspect one invocation and check its place in the chain",
    context="Called by a tenant admin or auditor following a listing or a request id",
    owners=["team-platform"],
    tags=["audit"],
    stability="beta",
    input=GetEventInput,
    output=AuditEvent,
    errors=[AUDIT_EVENT_NOT_FOUND],
    auth="user",
    rules=[("audit", "read")],
)
