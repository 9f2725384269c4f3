"""Handlers for audit.listEvents and audit.getEvent.

A caller reads its own tenant's events. Only a caller of the platform tenant (set by
``SPECOPS_AUDIT_PLATFORM_TENANT``) whom policy grants ``audit:read_any_tenant`` reads
every tenant's, and those of anonymous callers: both are needed, because a tenant admin
holds every action (``p, admin, *, *, *``) in its own tenant.
"""

from __future__ import annotations

from audit.query import (
    EVERY_TENANT,
    AuditQuery,
    CursorError,
    EventFilter,
    Scope,
    StoredEvent,
    decode_cursor,
    encode_cursor,
)
from registry.context import Context
from registry.errors import CATALOGUE, Issue
from specs.audit.errors import AUDIT_EVENT_NOT_FOUND
from specs.audit.get_event import GetEventInput
from specs.audit.list_events import AuditEventPage, ListEventsInput
from specs.audit.models import AuditEvent


def view(event: StoredEvent) -> AuditEvent:
    return AuditEvent(
        seq=event.seq,
        id=event.id,
        at=event.at,
        request_id=event.request_id,
        trace_id=event.trace_id,
        transport=event.transport,
        client=event.client,
        tenant_id=event.tenant_id,
        actor_id=event.actor_id,
        actor_kind=event.actor_kind,
        credential_id=event.credential_id,
        operation_key=event.operation_key,
        operation_version=event.operation_version,
        decision=event.decision,
        outcome=event.outcome,
        status=event.status,
        latency_ms=event.latency_ms,
        idempotency_key=event.idempotency_key,
        replayed=event.replayed,
        input_digest=event.input_digest,
        input=event.input,
        detail=event.detail,
        policy_rule=event.policy_rule,
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


class AuditEventHandlers:
    """Audit reads over ``query``; ``platform_tenant`` is the tenant whose auditors may
    read every tenant's events (None: no such tenant)."""

    def __init__(self, query: AuditQuery, *, platform_tenant: str | None) -> None:
        self.query = query
        self.platform_tenant = platform_tenant

    async def reads_every_tenant(self, ctx: Context) -> bool:
        """Whether the caller is a platform auditor: of the platform tenant, and granted
        audit:read_any_tenant there."""
        if self.platform_tenant is None or ctx.tenant_id != self.platform_tenant:
            return False
        return await ctx.allowed("audit", "read_any_tenant")

    async def list_events(self, data: ListEventsInput, ctx: Context) -> AuditEventPage:
        before = None
        if data.cursor:
            try:
                before = decode_cursor(data.cursor)
            except CursorError as exc:
                raise CATALOGUE.INVALID_INPUT(
                    "cursor is not one this server issued",
                    issues=(Issue("cursor", "invalid_cursor", str(exc)),),
                ) from None
        scope: Scope = ctx.tenant_id
        if data.tenant_id != ctx.tenant_id and await self.reads_every_tenant(ctx):
            scope = EVERY_TENANT
        elif data.tenant_id not in (None, ctx.tenant_id):
            raise CATALOGUE.FORBIDDEN(
                "Reading another tenant's audit events needs audit:read_any_tenant, "
                "held by callers of the platform tenant only"
            )
        filters = EventFilter(
            tenant_id=data.tenant_id,
            actor_id=data.actor_id,
            operation_key=data.operation_key,
            outcome=data.outcome,
            transport=data.transport,
            request_id=data.request_id,
            trace_id=data.trace_id,
            since=data.since,
            until=data.until,
        )
        events, more = await self.query.page(scope, filters, limit=data.limit, before_seq=before)
        return AuditEventPage(
            items=[view(e) for e in events],
            next_cursor=encode_cursor(events[-1].seq) if more and events else None,
        )

    async def get_event(self, data: GetEventInput, ctx: Context) -> AuditEvent:
        event = await self.query.get(ctx.tenant_id, data.seq)
        if event is None and await self.reads_every_tenant(ctx):
            event = await self.query.get(EVERY_TENANT, data.seq)
        if event is None:
            raise AUDIT_EVENT_NOT_FOUND(f"No audit event {data.seq} you may read")
        return view(event)
