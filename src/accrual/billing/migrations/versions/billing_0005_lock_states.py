"""workspace lock states: what each console was last told about a workspace's arrears

Revision ID: billing_0005
Revises: billing_0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0005'
down_revision = 'billing_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workspace_lock_states',
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('lock_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['arrears_cases.id'], ),
    sa.PrimaryKeyConstraint('workspace_id')
    )
    op.create_index('ix_workspace_lock_states_case', 'workspace_lock_states', ['case_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_workspace_lock_states_case', table_name='workspace_lock_states')
    op.drop_table('workspace_lock_states')
