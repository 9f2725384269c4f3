"""audit attempts: a command's attempt, stored before its handler runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

``audit_attempts`` holds one row per command whose handler is running or whose record is
not stored yet: the record it would leave if it never finished. The command's audit
record deletes it in the same transaction. ``audit_owners`` names the process of each
attempt and when it was last seen alive, so that a starting process records the attempts
of processes that are gone as ``INTERRUPTED`` (``audit.attempts``).
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_owners',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('pid_started', sa.BigInteger(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_owners')),
    )
    op.create_table(
        'audit_attempts',
        sa.Column('id', sa.String(length=48), nullable=False),
        sa.Column('owner', sa.String(length=32), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_attempts')),
    )
    op.create_index('ix_audit_attempts_owner', 'audit_attempts', ['owner'])


def downgrade() -> None:
    op.drop_index('ix_audit_attempts_owner', table_name='audit_attempts')
    op.drop_table('audit_attempts')
    op.drop_table('audit_owners')
