"""settlement methods: linked cloud accounts, method changes, and each charge's method

Revision ID: billing_0006
Revises: billing_0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0006'
down_revision = 'billing_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cloud_accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('vendor', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_cloud_accounts_account_id', 'cloud_accounts', ['account_id'], unique=False)
    op.create_index('ix_cloud_accounts_vendor_external', 'cloud_accounts',
                    ['vendor', 'external_id'], unique=False)
    op.create_table('settlement_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('from_method', sa.String(length=32), nullable=False),
    sa.Column('to_method', sa.String(length=32), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_settlement_changes_workspace', 'settlement_changes',
                    ['workspace_id', 'requested_at'], unique=False)
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settlement_method', sa.String(length=32), nullable=True))
    # Every charge settled so far was settled from the wallet.
    op.execute("UPDATE charges SET settlement_method = 'billing_center' "
               "WHERE account_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_column('settlement_method')
    op.drop_index('ix_settlement_changes_workspace', table_name='settlement_changes')
    op.drop_table('settlement_changes')
    op.drop_index('ix_cloud_accounts_vendor_external', table_name='cloud_accounts')
    op.drop_index('ix_cloud_accounts_account_id', table_name='cloud_accounts')
    op.drop_table('cloud_accounts')
