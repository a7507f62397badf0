"""workspace arrears state from the billing center, and dissolution

Revision ID: console_0002
Revises: console_0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = 'console_0002'
down_revision = 'console_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lock_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('lock_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lock_version', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('dissolved_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('dissolved_at')
        batch_op.drop_column('lock_version')
        batch_op.drop_column('lock_at')
        batch_op.drop_column('lock_state')
