"""sign-in failures: the throttle's counters per account and client address

Revision ID: console_0004
Revises: console_0003
Create Date: 2026-11-28

Keys are SHA-256 hashes; rows past keep_until are purged as sign-ins fail.
"""

import sqlalchemy as sa
from alembic import op

revision = 'console_0004'
down_revision = 'console_0003'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('console_sign_in_failures',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', _AT, nullable=False),
    sa.Column('blocked_until', _AT, nullable=True),
    sa.Column('lockouts', sa.Integer(), nullable=False),
    sa.Column('keep_until', _AT, nullable=False),
    sa.PrimaryKeyConstraint('key_hash')
    )
    op.create_index('ix_console_sign_in_failures_keep_until', 'console_sign_in_failures',
                    ['keep_until'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_console_sign_in_failures_keep_until', table_name='console_sign_in_failures')
    op.drop_table('console_sign_in_failures')
