"""promotion requests: raises to administrator of a commercial workspace that wait for
the paying account's approval

Revision ID: billing_0015
Revises: billing_0014
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0015'
down_revision = 'billing_0014'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('promotion_requests',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('site', sa.String(length=32), nullable=False),
    sa.Column('workspace_name', sa.String(length=200), nullable=False),
    sa.Column('member_email', sa.String(length=320), nullable=False),
    sa.Column('requested_by_email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('requested_at', _AT, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_at', _AT, nullable=True),
    sa.Column('decided_by', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index('ix_promotion_requests_workspace_id', 'promotion_requests',
                    ['workspace_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_promotion_requests_workspace_id', table_name='promotion_requests')
    op.drop_table('promotion_requests')
