"""Every table, as SQLAlchemy Core. Migrations under ``storage/migrations`` create them.

Business rows carry ``tenant_id``; every query on them filters by the caller's tenant.
Money is integer minor units with its currency.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("roles", Text, nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("operations", Text, nullable=True),  # JSON list of operation keys; NULL: all
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("owner_id", String(128), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("transaction_id", String(255), nullable=True),
    # The Stripe idempotency key of the capture that moved it to processing (0004).
    Column("capture_key", String(64), nullable=True),
    # That capture's payment method, while it holds the invoice (0005).
    Column("capture_method", String(255), nullable=True),
    # Its Stripe request got no answer: it may have charged (0005).
    Column("capture_outcome_unknown", Boolean, nullable=False, server_default=false()),
    Column("paid_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_invoices_tenant_owner_created", "tenant_id", "owner_id", "created_at"),
    Index("ix_invoices_tenant_created", "tenant_id", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("actor_id", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("response", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("client", String(128), nullable=True),
    Column("tenant_id", String(64), nullable=True),
    Column("actor_id", String(128), nullable=True),
    Column("actor_kind", String(16), nullable=True),
    Column("credential_id", String(32), nullable=True),
    Column("operation_key", String(200), nullable=False),
    Column("operation_version", String(64), nullable=True),
    Column("decision", String(8), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("replayed", Boolean, nullable=False),
    Column("input_digest", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Column("policy_rule", String(255), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("input", Text, nullable=True),  # JSON, sensitive fields redacted
    # The hash chain: seq is gapless from 1; hash covers the row and prev_hash.
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_tenant_at", "tenant_id", "at"),
    Index("ix_audit_events_request_id", "request_id"),
    Index("ux_audit_events_seq", "seq", unique=True),
    Index("ix_audit_events_tenant_seq", "tenant_id", "seq"),
)

#: One row (id 1): the last chained record's seq and hash. Writers lock it, so records
#: from every process join one chain; verify compares the chain's end with it (a deleted
#: tail shows).
audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

policy_rules = Table(
    "policy_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ptype", String(8), nullable=False),  # p: sub, dom, obj, act, eft; g: member, role, dom
    Column("v0", String(255), nullable=False),
    Column("v1", String(255), nullable=False),
    Column("v2", String(255), nullable=False),
    Column("v3", String(255), nullable=False),
    Column("v4", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=True),
    Index("ux_policy_rules_rule", "ptype", "v0", "v1", "v2", "v3", "v4", unique=True),
)

#: One row (id 1) whose version grows with every policy change, so that every server
#: process notices a change made by another and reloads.
policy_state = Table(
    "policy_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: A command's attempt: the record it would leave as ``INTERRUPTED`` (JSON), stored
#: before its handler runs and deleted in the transaction that stores its record.
audit_attempts = Table(
    "audit_attempts",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("owner", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_audit_attempts_owner", "owner"),
)

#: The processes that stored attempts, and when each was last seen alive.
audit_owners = Table(
    "audit_owners",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started", BigInteger, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)
