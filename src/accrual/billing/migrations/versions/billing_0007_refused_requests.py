"""refused requests: a refusal stays bound to its idempotency key; bindings by account

Revision ID: billing_0007
Revises: billing_0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0007'
down_revision = 'billing_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('refused_requests',
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('refused_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    op.create_index('ix_bindings_account', 'bindings', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_bindings_account', table_name='bindings')
    op.drop_table('refused_requests')
