"""invoices: invoice information, mailing addresses, requests against monthly bills

Revision ID: billing_0002
Revises: billing_0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0002'
down_revision = 'billing_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('invoice_profiles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('invoice_type', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('taxpayer_id', sa.String(length=64), nullable=False),
    sa.Column('registered_address', sa.String(length=300), nullable=True),
    sa.Column('registered_phone', sa.String(length=32), nullable=True),
    sa.Column('bank_name', sa.String(length=200), nullable=True),
    sa.Column('bank_account', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('invoice_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_profiles_account_id'), ['account_id'], unique=False)

    op.create_table('mailing_addresses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('recipient', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=False),
    sa.Column('postcode', sa.String(length=16), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mailing_addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailing_addresses_account_id'), ['account_id'], unique=False)

    op.create_table('invoice_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('address_id', sa.Integer(), nullable=True),
    sa.Column('invoice_type', sa.String(length=32), nullable=False),
    sa.Column('profile_snapshot', sa.Text(), nullable=False),
    sa.Column('address_snapshot', sa.Text(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('invoice_number', sa.String(length=64), nullable=True),
    sa.Column('reject_reason', sa.String(length=500), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_minor > 0', name='ck_invoice_requests_positive'),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.ForeignKeyConstraint(['address_id'], ['mailing_addresses.id'], ),
    sa.ForeignKeyConstraint(['profile_id'], ['invoice_profiles.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('invoice_number')
    )
    with op.batch_alter_table('invoice_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_requests_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_invoice_requests_status', ['status', 'requested_at'], unique=False)

    op.create_table('invoice_request_bills',
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.Integer(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_minor > 0', name='ck_invoice_request_bills_positive'),
    sa.ForeignKeyConstraint(['bill_id'], ['monthly_bills.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['invoice_requests.id'], ),
    sa.PrimaryKeyConstraint('request_id', 'bill_id')
    )
    with op.batch_alter_table('invoice_request_bills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_request_bills_bill_id'), ['bill_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('invoice_request_bills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_request_bills_bill_id'))

    op.drop_table('invoice_request_bills')
    with op.batch_alter_table('invoice_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_requests_status')
        batch_op.drop_index(batch_op.f('ix_invoice_requests_account_id'))

    op.drop_table('invoice_requests')
    with op.batch_alter_table('mailing_addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailing_addresses_account_id'))

    op.drop_table('mailing_addresses')
    with op.batch_alter_table('invoice_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_profiles_account_id'))

    op.drop_table('invoice_profiles')
