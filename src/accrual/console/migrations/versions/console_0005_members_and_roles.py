"""members and custom roles: named roles per workspace, a member's custom role, a raise
to administrator waiting for approval, one owner per workspace; an account's language

Revision ID: console_0005
Revises: console_0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'console_0005'
down_revision = 'console_0004'
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)
_OWNER = sa.text("role = 'owner'")


def upgrade() -> None:
    op.create_table('workspace_roles',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('name_key', sa.String(length=160), nullable=False),
    sa.Column('permissions', sa.String(length=200), nullable=False),
    sa.Column('created_at', _AT, nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'name_key', name='uq_workspace_roles_name')
    )
    with op.batch_alter_table('workspace_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('custom_role_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('pending_role', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('pending_request_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('pending_since', _AT, nullable=True))
        batch_op.add_column(sa.Column('added_at', _AT, nullable=True))
        batch_op.create_check_constraint(
            'ck_workspace_members_role', "role IN ('owner', 'admin', 'member', 'custom')")
        batch_op.create_check_constraint(
            'ck_workspace_members_custom_role',
            "(role = 'custom' AND custom_role_id IS NOT NULL) OR "
            "(role <> 'custom' AND custom_role_id IS NULL)")
    op.create_index('ux_workspace_members_owner', 'workspace_members', ['workspace_id'],
                    unique=True, postgresql_where=_OWNER, sqlite_where=_OWNER)
    with op.batch_alter_table('console_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('console_accounts', schema=None) as batch_op:
        batch_op.drop_column('language')
    op.drop_index('ux_workspace_members_owner', table_name='workspace_members')
    with op.batch_alter_table('workspace_members', schema=None) as batch_op:
        batch_op.drop_constraint('ck_workspace_members_custom_role', type_='check')
        batch_op.drop_constraint('ck_workspace_members_role', type_='check')
        batch_op.drop_column('added_at')
        batch_op.drop_column('pending_since')
        batch_op.drop_column('pending_request_id')
        batch_op.drop_column('pending_role')
        batch_op.drop_column('custom_role_id')
    op.drop_table('workspace_roles')
