"""invoice capture key: the Stripe idempotency key of the capture holding an invoice

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

A capture moves its invoice open -> processing and keeps its Stripe idempotency key here,
so that after a crash a retry of the same capture (same payment method and amount, hence
the same key and the very same Stripe request) can take the stalled invoice over.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capture_key', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('capture_key')
