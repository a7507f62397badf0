"""instruments (prepaid cards, vouchers, activation codes), arrears cases and locks, mail outbox

Revision ID: billing_0004
Revises: billing_0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0004'
down_revision = 'billing_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billing_mail_outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('template', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('values_json', sa.Text(), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key')
    )
    op.create_index('ix_billing_mail_outbox_due', 'billing_mail_outbox', ['sent_at', 'next_attempt_at'], unique=False)
    op.create_table('arrears_cases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lock_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.Column('open', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'open', name='uq_arrears_cases_one_open')
    )
    op.create_index('ix_arrears_cases_due', 'arrears_cases', ['ended_at', 'lock_at'], unique=False)
    op.create_table('instruments',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('face_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('paid_cash_minor', sa.BigInteger(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=64), nullable=True),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.CheckConstraint('face_minor > 0', name='ck_instruments_face_positive'),
    sa.ForeignKeyConstraint(['account_id'], ['billing_accounts.id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_instruments_account', 'instruments', ['account_id', 'kind', 'expires_at'], unique=False)
    op.create_index('ix_instruments_expiry', 'instruments', ['status', 'expires_at'], unique=False)
    op.create_table('arrears_locks',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unlocked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['arrears_cases.id'], ),
    sa.PrimaryKeyConstraint('case_id', 'workspace_id')
    )
    op.create_table('voucher_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('face_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('validity_days', sa.Integer(), nullable=False),
    sa.Column('redeem_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('redeemed_by', sa.String(length=32), nullable=True),
    sa.Column('instrument_id', sa.String(length=32), nullable=True),
    sa.CheckConstraint('face_minor > 0', name='ck_voucher_codes_face_positive'),
    sa.ForeignKeyConstraint(['instrument_id'], ['instruments.id'], ),
    sa.ForeignKeyConstraint(['redeemed_by'], ['billing_accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code_hash')
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('adjusts', sa.String(length=36), nullable=True))
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_check_constraint('ck_ledger_accounts_not_overdrawn',
                                         "kind = 'prepaid' OR balance_minor >= 0")


def downgrade() -> None:
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_constraint('ck_ledger_accounts_not_overdrawn', type_='check')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_column('adjusts')
    op.drop_table('voucher_codes')
    op.drop_table('arrears_locks')
    op.drop_index('ix_instruments_expiry', table_name='instruments')
    op.drop_index('ix_instruments_account', table_name='instruments')
    op.drop_table('instruments')
    op.drop_index('ix_arrears_cases_due', table_name='arrears_cases')
    op.drop_table('arrears_cases')
    op.drop_index('ix_billing_mail_outbox_due', table_name='billing_mail_outbox')
    op.drop_table('billing_mail_outbox')
