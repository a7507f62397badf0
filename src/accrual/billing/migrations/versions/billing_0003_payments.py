"""payments: recharge orders paid through a payment gateway

Revision ID: billing_0003
Revises: billing_0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0003'
down_revision = 'billing_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recharge_orders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('return_url', sa.String(length=500), nullable=True),
    sa.Column('redirect_url', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=True),
    sa.Column('entry_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_minor > 0', name='ck_recharge_orders_positive'),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'idempotency_key', name='uq_recharge_orders_account_key'),
    sa.UniqueConstraint('gateway', 'transaction_id', name='uq_recharge_orders_transaction')
    )


def downgrade() -> None:
    op.drop_table('recharge_orders')
