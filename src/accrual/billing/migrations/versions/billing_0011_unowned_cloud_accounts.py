"""cloud accounts resolved from a marketplace before a billing account takes them

Revision ID: billing_0011
Revises: billing_0010
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0011'
down_revision = 'billing_0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cloud_accounts', schema=None) as batch_op:
        batch_op.alter_column('account_id', existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM marketplace_activations WHERE cloud_account_id IN "
               "(SELECT id FROM cloud_accounts WHERE account_id IS NULL)")
    op.execute("DELETE FROM cloud_accounts WHERE account_id IS NULL")
    with op.batch_alter_table('cloud_accounts', schema=None) as batch_op:
        batch_op.alter_column('account_id', existing_type=sa.String(length=32), nullable=False)
