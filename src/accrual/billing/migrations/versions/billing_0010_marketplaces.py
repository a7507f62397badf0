"""cloud marketplaces: activations, the charge reporter's state, notifications, cloud locks

Revision ID: billing_0010
Revises: billing_0009
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0010'
down_revision = 'billing_0009'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('known_workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activated_via', sa.String(length=16), nullable=True))
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cloud_account_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cloud_account_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('cloud_minor', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('marketplace_charge_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_charges_cloud_uncut',
                              ['cloud_account_id', 'marketplace_charge_id'], unique=False)
    with op.batch_alter_table('workspace_lock_states', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('cloud_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product_code', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('license_ref', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('customer_ref', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('unsubscribing_at', _AT, nullable=True))
    op.create_table('marketplace_activations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('vendor', sa.String(length=16), nullable=False),
    sa.Column('cloud_account_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', _AT, nullable=False),
    sa.Column('expires_at', _AT, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=True),
    sa.Column('completed_at', _AT, nullable=True),
    sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('marketplace_charges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('cloud_account_id', sa.String(length=32), nullable=False),
    sa.Column('vendor', sa.String(length=16), nullable=False),
    sa.Column('dimension', sa.String(length=255), nullable=False),
    sa.Column('period_start', _AT, nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', _AT, nullable=False),
    sa.Column('deadline_at', _AT, nullable=False),
    sa.Column('created_at', _AT, nullable=False),
    sa.Column('sent_at', _AT, nullable=True),
    sa.Column('settled_at', _AT, nullable=True),
    sa.Column('record_id', sa.String(length=255), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('alerted_at', _AT, nullable=True),
    sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cloud_account_id', 'dimension', 'period_start',
                        name='uq_marketplace_charges_period')
    )
    op.create_index('ix_marketplace_charges_due', 'marketplace_charges',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_table('marketplace_carry',
    sa.Column('cloud_account_id', sa.String(length=32), nullable=False),
    sa.Column('carried_minor', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', _AT, nullable=False),
    sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_accounts.id'], ),
    sa.PrimaryKeyConstraint('cloud_account_id')
    )
    op.create_table('marketplace_notifications',
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('vendor', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('sent_at', _AT, nullable=False),
    sa.Column('received_at', _AT, nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_table('cloud_locks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('cloud_account_id', sa.String(length=32), nullable=False),
    sa.Column('locked_at', _AT, nullable=False),
    sa.Column('unlocked_at', _AT, nullable=True),
    sa.Column('unlock_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_cloud_locks_workspace_id', 'cloud_locks', ['workspace_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cloud_locks_workspace_id', table_name='cloud_locks')
    op.drop_table('cloud_locks')
    op.drop_table('marketplace_notifications')
    op.drop_table('marketplace_carry')
    op.drop_index('ix_marketplace_charges_due', table_name='marketplace_charges')
    op.drop_table('marketplace_charges')
    op.drop_table('marketplace_activations')
    with op.batch_alter_table('cloud_accounts', schema=None) as batch_op:
        batch_op.drop_column('unsubscribing_at')
        batch_op.drop_column('customer_ref')
        batch_op.drop_column('license_ref')
        batch_op.drop_column('product_code')
    with op.batch_alter_table('workspace_lock_states', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_cloud_uncut')
        batch_op.drop_column('marketplace_charge_id')
        batch_op.drop_column('cloud_minor')
        batch_op.drop_column('cloud_account_id')
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.drop_column('cloud_account_id')
    with op.batch_alter_table('known_workspaces', schema=None) as batch_op:
        batch_op.drop_column('activated_via')
