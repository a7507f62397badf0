"""running per-day usage totals, kept at ingest

Revision ID: console_0003
Revises: console_0002
Create Date: 2026-11-28

The totals are filled from the usage already stored. A total that stored usage
takes past the limits the table now checks (10^15 billable units, 10^17
companion counts) is held at the limit: the day then takes no further usage.
"""

import sqlalchemy as sa
from alembic import op

revision = 'console_0003'
down_revision = 'console_0002'
branch_labels = None
depends_on = None

MAX_UNITS = 10**15
MAX_COMPANION = 10**17
# The items whose day is the maximum of cumulative values (catalog.items, DailyRule.MAX)
# when this revision was written.
MAX_ITEMS = ('datakit', 'forward_internal', 'network_host', 'session_replay', 'timeseries')


def upgrade() -> None:
    op.create_table('usage_day_totals',
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('item', sa.String(length=32), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('companion', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity >= 0 AND quantity <= 1000000000000000',
                       name='ck_usage_day_totals_quantity'),
    sa.CheckConstraint('companion >= 0 AND companion <= 100000000000000000',
                       name='ck_usage_day_totals_companion'),
    sa.PrimaryKeyConstraint('workspace_id', 'day', 'item', 'retention_days'),
    postgresql_with={'fillfactor': 40}
    )
    max_items = ', '.join(f"'{item}'" for item in MAX_ITEMS)
    if op.get_bind().dialect.name == 'postgresql':
        # SUM of bigint is numeric there: exact, whatever it adds up to.
        quantity = (f"LEAST(CASE WHEN item IN ({max_items}) THEN MAX(quantity) "
                    f"ELSE SUM(quantity) END, {MAX_UNITS})")
        companion = f"LEAST(SUM(companion), {MAX_COMPANION})"
    else:
        # SQLite's SUM raises on passing 64 bits; TOTAL adds in binary floating point,
        # exact for every total below 2^53 (> 9 × 10^15), so exact below the limits.
        quantity = (f"CAST(MIN(CASE WHEN item IN ({max_items}) THEN MAX(quantity) "
                    f"ELSE TOTAL(quantity) END, {MAX_UNITS}) AS INTEGER)")
        companion = f"CAST(MIN(TOTAL(companion), {MAX_COMPANION}) AS INTEGER)"
    op.execute(
        "INSERT INTO usage_day_totals "
        "(workspace_id, day, item, retention_days, quantity, companion) "
        f"SELECT workspace_id, day, item, retention_days, {quantity}, {companion} "
        "FROM usage_records GROUP BY workspace_id, day, item, retention_days")


def downgrade() -> None:
    op.drop_table('usage_day_totals')
