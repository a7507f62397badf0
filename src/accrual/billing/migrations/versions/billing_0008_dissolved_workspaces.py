"""dissolved workspaces: when a console dissolved a workspace the center knows

Revision ID: billing_0008
Revises: billing_0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0008'
down_revision = 'billing_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('known_workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dissolved_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('known_workspaces', schema=None) as batch_op:
        batch_op.drop_column('dissolved_at')
