"""invoice capture attempt: the held capture's payment method, and whether its outcome is known

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

A capture whose Stripe request got no answer keeps its invoice processing, marked
``capture_outcome_unknown``, with the payment method it sent (``capture_method``): a later
capture, with any payment method, first sends Stripe that very request again under its
idempotency key, to learn whether it charged.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capture_method', sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column(
                'capture_outcome_unknown',
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('capture_outcome_unknown')
        batch_op.drop_column('capture_method')
