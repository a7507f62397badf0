"""sign-in tickets: the owner's one-time jump from a console into the billing center

Revision ID: billing_0014
Revises: billing_0013
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0014'
down_revision = 'billing_0013'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('billing_sign_in_tickets',
    sa.Column('ticket_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('destination', sa.String(length=16), nullable=False),
    sa.Column('expires_at', _AT, nullable=False),
    sa.Column('used_at', _AT, nullable=True),
    sa.PrimaryKeyConstraint('ticket_hash')
    )
    op.create_index('ix_billing_sign_in_tickets_expires_at', 'billing_sign_in_tickets',
                    ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_billing_sign_in_tickets_expires_at', table_name='billing_sign_in_tickets')
    op.drop_table('billing_sign_in_tickets')
