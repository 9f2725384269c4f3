"""audit hash chain: trace id, redacted input, seq/prev_hash/hash, chain head, append-only

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Existing audit rows are chained in id order (seq 1, 2, ...) and the head is set to the
last of them. The hash function is a frozen copy of ``audit.chain`` as of this revision,
not an import: a migration must do the same thing whenever it runs, and rows chained here
must hash exactly like the rows the writer of this revision adds (``verify_chain`` checks
both with ``audit.chain``; tests/unit/test_audit_chain.py checks that they agree).

Then the table becomes append-only: UPDATE, DELETE (and on PostgreSQL TRUNCATE) raise.
On SQLite a later migration that rebuilds ``audit_events`` (``batch_alter_table`` with a
table copy) drops the triggers with the old table and must create them again.
"""

import json
from datetime import UTC, datetime, timedelta
from hashlib import sha256

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
PAGE = 2000
APPEND_ONLY = "audit_events is append-only"

# -- frozen copy of audit.chain (revision 0003) -------------------------------------------

_TEXT = "text"
_CONTENT = (
    ("at", "time"),
    ("request_id", _TEXT),
    ("transport", _TEXT),
    ("client", _TEXT),
    ("tenant_id", _TEXT),
    ("actor_id", _TEXT),
    ("actor_kind", _TEXT),
    ("credential_id", _TEXT),
    ("operation_key", _TEXT),
    ("operation_version", _TEXT),
    ("decision", _TEXT),
    ("outcome", _TEXT),
    ("status", "integer"),
    ("latency_ms", "real"),
    ("idempotency_key", _TEXT),
    ("replayed", "boolean"),
    ("input_digest", _TEXT),
    ("detail", _TEXT),
    ("policy_rule", _TEXT),
    ("trace_id", _TEXT),
    ("input", _TEXT),
)
_ENCODER = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=True, separators=(",", ":")
)


def _time_text(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _normalised(kind, value):
    if kind == "time":
        return _time_text(value)
    if kind == "integer":
        return int(value)
    if kind == "real":
        return float(value)
    if kind == "boolean":
        return bool(value)
    return None if value is None else str(value)


def _chain_hash(prev_hash, seq, row):
    values = [seq, *(_normalised(kind, row[name]) for name, kind in _CONTENT)]
    return sha256(prev_hash.encode("ascii") + _ENCODER.encode(values).encode("ascii")).hexdigest()


# -------------------------------------------------------------------------------------------

_events = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    *(
        sa.column(name, {"integer": sa.Integer(), "real": sa.Float(), "boolean": sa.Boolean()}.get(kind, sa.Text()))
        for name, kind in _CONTENT[1:]
    ),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String(64)),
    sa.column("hash", sa.String(64)),
)


def _chain_existing_rows(bind):
    """Give every existing row its seq, prev_hash and hash, in id order, a page at a time.
    Returns the last (seq, hash)."""
    seq, prev_hash, last_id = 0, GENESIS, None
    update = (
        sa.update(_events)
        .where(_events.c.id == sa.bindparam("_id"))
        .values(seq=sa.bindparam("_seq"), prev_hash=sa.bindparam("_prev"), hash=sa.bindparam("_hash"))
    )
    while True:
        query = sa.select(_events).order_by(_events.c.id).limit(PAGE)
        if last_id is not None:
            query = query.where(_events.c.id > last_id)
        rows = bind.execute(query).mappings().all()
        if not rows:
            return seq, prev_hash
        links = []
        for row in rows:
            seq += 1
            digest = _chain_hash(prev_hash, seq, row)
            links.append({"_id": row["id"], "_seq": seq, "_prev": prev_hash, "_hash": digest})
            prev_hash = digest
        bind.execute(update, links)
        last_id = rows[-1]["id"]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('input', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    seq, last_hash = _chain_existing_rows(bind)
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": last_hash, "updated_at": datetime.now(UTC)}])

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ux_audit_events_seq', ['seq'], unique=True)
        # audit.listEvents: one tenant's events, newest first
        batch_op.create_index('ix_audit_events_tenant_seq', ['tenant_id', 'seq'])

    if bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY} (% refused)', TG_OP; END; $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{action.lower()} BEFORE {action} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_tenant_seq')
        batch_op.drop_index('ux_audit_events_seq')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('input')
        batch_op.drop_column('trace_id')

    op.drop_table('audit_chain_head')
