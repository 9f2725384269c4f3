"""The audit record: one per invocation, whatever stage ended it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal


@dataclass(slots=True)
class AuditRecord:
    """One invocation, as the audit trail keeps it. Never holds a secret. Not frozen
    (docs/performance.md, "Pipeline and audit")."""

    at: float
    request_id: str
    transport: str
    client: str | None
    tenant_id: str | None
    actor_id: str | None
    actor_kind: str | None
    credential_id: str | None
    operation_key: str
    operation_version: str | None
    decision: Literal["allow", "deny", "none"]
    outcome: str
    status: int
    latency_ms: float
    idempotency_key: str | None
    replayed: bool
    input_digest: str | None
    detail: str | None
    #: The policy line that decided (``p, role, dom, obj, act, eft``), where one did.
    policy_rule: str | None = None
    #: W3C trace id (32 hex digits) from the caller's ``traceparent``, or a new one.
    trace_id: str | None = None
    #: The input as JSON text with sensitive fields redacted (``registry.redaction``).
    input: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a new dict (``dataclasses.asdict`` would deep-copy each value)."""
        return {name: getattr(self, name) for name in FIELDS}


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditRecord))
