"""The audit event as auditors read it: every column of ``audit_events``, the redacted
input as a JSON object, and the hash chain fields that let a reader check the chain."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from registry.fields import Timestamp
from registry.model import WireModel

#: The largest chain position (a signed 64-bit column).
MAX_SEQ = 2**63 - 1

Seq = Annotated[
    int,
    Field(ge=1, le=MAX_SEQ, description="The event's position in the audit chain (from 1)"),
]


FilterText = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
OutcomeCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=64, pattern=r"^[A-Z][A-Z0-9_]+$"),
    Field(description="OK, or the error code the invocation ended with", examples=["FORBIDDEN"]),
]
#: Not only contract keys: refusals are recorded under the key as called (OP_NOT_FOUND)
#: or the endpoint's name (``mcp``).
OperationKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$"),
    Field(examples=["billing.getInvoice"]),
]
TraceId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{32}$"),
    Field(description="W3C trace id: 32 lowercase hex digits"),
]


class AuditEvent(WireModel):
    """One invocation as the audit trail recorded it, allowed, refused or failed."""

    seq: int = Field(description="Position in the audit chain: gapless, from 1")
    id: int = Field(description="The row's id (seq, not id, orders the chain)")
    at: Timestamp = Field(description="When the invocation finished (UTC)")
    request_id: str
    trace_id: str | None = None
    transport: str = Field(description="rest, graphql, mcp, cli, webhook or workflow")
    client: str | None = Field(None, description="The caller's address or client name")
    tenant_id: str | None = Field(None, description="The caller's tenant; null: anonymous")
    actor_id: str | None = None
    actor_kind: str | None = None
    credential_id: str | None = Field(None, description="The API key's id, never its secret")
    operation_key: str
    operation_version: str | None = None
    decision: str = Field(description="allow or deny: what the policy decided")
    outcome: str = Field(description="OK or the error code the invocation ended with")
    status: int = Field(ge=0, le=999, description="The HTTP status the outcome maps to")
    latency_ms: float
    idempotency_key: str | None = None
    replayed: bool
    input_digest: str | None = Field(None, description="SHA-256 of the canonical input")
    input: dict[str, Any] | None = Field(
        None, description="The input as recorded, sensitive fields already redacted"
    )
    detail: str | None = Field(None, description="The problem's detail, for failures")
    policy_rule: str | None = Field(None, description="The policy line or level that decided")
    prev_hash: str = Field(description="The hash of the event at seq - 1")
    hash: str = Field(description="SHA-256 over this event and prev_hash")
