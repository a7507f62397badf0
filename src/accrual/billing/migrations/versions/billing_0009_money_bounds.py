"""money bounds: CHECKs on ledger balances and posting amounts (domain/bounds.py); room
for a 255-character Idempotency-Key in journal and refusal keys

The ledger refuses a movement past these bounds before writing anything; the
constraints are the last line on both backends. On SQLite they need the table
to be rebuilt (batch mode), which ``accrual.infra.db.upgrade`` runs with SQLite's
foreign keys off (postings refer to ledger_accounts) and checks after. The literal values are
those of this revision and do not follow later changes to the bounds.

Revision ID: billing_0009
Revises: billing_0008
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = 'billing_0009'
down_revision = 'billing_0008'
branch_labels = None
depends_on = None

MAX_BALANCE_MINOR = 10**17  # 10^15 currency units
MAX_POSTING_MINOR = 10**17  # 10^15 currency units


def upgrade() -> None:
    with op.batch_alter_table('ledger_accounts', schema=None, recreate='auto') as batch_op:
        batch_op.create_check_constraint(
            'ck_ledger_accounts_balance_bound',
            f'balance_minor BETWEEN {-MAX_BALANCE_MINOR} AND {MAX_BALANCE_MINOR}')
    with op.batch_alter_table('postings', schema=None, recreate='auto') as batch_op:
        batch_op.create_check_constraint(
            'ck_postings_amount_bound',
            f'amount_minor BETWEEN {-MAX_POSTING_MINOR} AND {MAX_POSTING_MINOR}')
    for table in ('journal_entries', 'refused_requests'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('idempotency_key', existing_type=sa.String(length=200),
                                  type_=sa.String(length=320), existing_nullable=False)


def downgrade() -> None:
    for table in ('refused_requests', 'journal_entries'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('idempotency_key', existing_type=sa.String(length=320),
                                  type_=sa.String(length=200), existing_nullable=False)
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_constraint('ck_postings_amount_bound', type_='check')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_constraint('ck_ledger_accounts_balance_bound', type_='check')
