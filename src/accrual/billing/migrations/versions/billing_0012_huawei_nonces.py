"""marketplace nonces: KooGallery's activity nonces, taken once across processes and restarts

Revision ID: billing_0012
Revises: billing_0011
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0012'
down_revision = 'billing_0011'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('marketplace_nonces',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('seen_at', _AT, nullable=False),
    sa.Column('keep_until', _AT, nullable=False),
    sa.PrimaryKeyConstraint('scope', 'nonce')
    )
    op.create_index('ix_marketplace_nonces_keep_until', 'marketplace_nonces', ['keep_until'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_marketplace_nonces_keep_until', table_name='marketplace_nonces')
    op.drop_table('marketplace_nonces')
