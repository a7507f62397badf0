"""password resets: one-time codes mailed for a forgotten password

Revision ID: billing_0016
Revises: billing_0015
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0016'
down_revision = 'billing_0015'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('billing_password_resets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', _AT, nullable=False),
    sa.Column('expires_at', _AT, nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('used_at', _AT, nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_billing_password_resets_account_id', 'billing_password_resets',
                    ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_billing_password_resets_account_id', table_name='billing_password_resets')
    op.drop_table('billing_password_resets')
