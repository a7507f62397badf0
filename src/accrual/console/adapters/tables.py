"""The console's own schema (SQLAlchemy Core). Migrations live in ../migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

from accrual.infra.db import UtcDateTime
from accrual.infra.outbox import inbox_table, outbox_table
from accrual.infra.passwords import password_resets_table
from accrual.infra.sign_in_failures import sign_in_failures_table

metadata = MetaData()

# Decimal quantities and prices are stored as exact decimal strings; money is
# stored as integer minor units. Neither backend then rounds through floats.

accounts = Table(
    "console_accounts", metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The pages' language the account last chose (en | zh); NULL until it chooses one.
    Column("language", String(8)),
)

sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

# Failed sign-ins per account and client address (the throttle's counters).
sign_in_failures = sign_in_failures_table("console_sign_in_failures", metadata)

# One-time codes for a forgotten password (hashes only).
password_resets = password_resets_table("console_password_resets", metadata)

workspaces = Table(
    "workspaces", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("site", String(32), nullable=False),
    Column("language", String(8), nullable=False),
    Column("plan", String(16), nullable=False),  # free | commercial
    # When a free workspace became commercial; usage before it is never billed.
    # NULL for workspaces that were commercial from the start.
    Column("commercial_since", UtcDateTime()),
    Column("status", String(16), nullable=False),  # active | locked | dissolved
    Column("owner_account_id", String(32), nullable=False),
    Column("billing_account_id", String(32)),
    Column("settlement_method", String(32)),
    Column("created_at", UtcDateTime(), nullable=False),
    # The arrears state the billing center last sent (workspace.lock): countdown or
    # locked, NULL when clear; the lock date; and that message's version, so that an
    # older message arriving late is ignored.
    Column("lock_state", String(16)),
    Column("lock_at", UtcDateTime()),
    Column("lock_version", BigInteger),
    Column("dissolved_at", UtcDateTime()),
)

members = Table(
    "workspace_members", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("account_id", String(32), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | admin | member | custom
    Column("custom_role_id", String(32)),  # the workspace_roles row, exactly when custom
    # A raise to administrator waiting for the billing center's approval (commercial plan):
    # the role wanted, the request's id (the messages name it) and when it was asked.
    Column("pending_role", String(16)),
    Column("pending_request_id", String(32)),
    Column("pending_since", UtcDateTime()),
    Column("added_at", UtcDateTime()),  # NULL for rows made before members were managed
    Index("ix_workspace_members_account", "account_id"),
    # One owner per workspace, whatever path writes the rows.
    Index("ux_workspace_members_owner", "workspace_id", unique=True,
          postgresql_where=text("role = 'owner'"), sqlite_where=text("role = 'owner'")),
    CheckConstraint("role IN ('owner', 'admin', 'member', 'custom')",
                    name="ck_workspace_members_role"),
    CheckConstraint("(role = 'custom' AND custom_role_id IS NOT NULL) OR "
                    "(role <> 'custom' AND custom_role_id IS NULL)",
                    name="ck_workspace_members_custom_role"),
)

# A workspace's own named roles ("Finance"), each granting permissions of
# console.domain.roles.PERMISSIONS (stored comma-separated, sorted).
workspace_roles = Table(
    "workspace_roles", metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), nullable=False),
    Column("name", String(40), nullable=False),
    Column("name_key", String(160), nullable=False),  # case-folded: "Finance" = "finance"
    Column("permissions", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("workspace_id", "name_key", name="uq_workspace_roles_name"),
)

ingest_keys = Table(
    "ingest_keys", metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("workspace_id", String(32), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Policy changes; the row with the latest effective_from <= t is in force at t.
retention_policies = Table(
    "retention_policies", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("data_type", String(16), primary_key=True),
    Column("effective_from", UtcDateTime(), primary_key=True),
    Column("retention_days", Integer, nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("changed_by", String(32), nullable=False),
)

usage_records = Table(
    "usage_records", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("record_id", String(128), primary_key=True),
    Column("item", String(32), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("day", Date, nullable=False),  # the site's billing day
    Column("hour_start", UtcDateTime(), nullable=False),  # site clock hour, as UTC
    Column("retention_days", Integer, nullable=False),
    Column("quantity", BigInteger, nullable=False),  # billable units
    Column("companion", BigInteger, nullable=False),  # spans / RUM side events
    Column("digest", String(32), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Index("ix_usage_records_day", "day", "workspace_id"),
)

# Running totals of stored usage, kept in the transaction that stores the records: per
# (workspace, site day, item, tier) the billable units (summed, or the day's maximum for
# max-type items) and companion counts (summed). Ingestion checks a day's limits and the
# free plan's quotas against them; admission, quotas and usage views read them. The
# CHECKs repeat the limits of console.domain.usage (MAX_DAY_UNITS, MAX_DAY_COMPANION)
# as the last line: no total can leave 64 bits, on either backend.
usage_day_totals = Table(
    "usage_day_totals", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("item", String(32), primary_key=True),
    Column("retention_days", Integer, primary_key=True),
    Column("quantity", BigInteger, nullable=False),
    Column("companion", BigInteger, nullable=False),
    CheckConstraint("quantity >= 0 AND quantity <= 1000000000000000",
                    name="ck_usage_day_totals_quantity"),
    CheckConstraint("companion >= 0 AND companion <= 100000000000000000",
                    name="ck_usage_day_totals_companion"),
    # Updated by nearly every batch, inserted once a day: room on each page lets
    # PostgreSQL update in place (HOT), without a new index entry each time.
    postgresql_with={"fillfactor": 40},
)

daily_statistics = Table(
    "daily_statistics", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("item", String(32), primary_key=True),
    Column("retention_days", Integer, primary_key=True),
    Column("quantity", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),  # Σ of its details
    Column("revision", Integer, nullable=False),  # newest detail revision
    Column("updated_at", UtcDateTime(), nullable=False),
)

billing_details = Table(
    "billing_details", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(32), nullable=False),
    Column("billing_account_id", String(32)),
    Column("day", Date, nullable=False),
    Column("item", String(32), nullable=False),
    Column("retention_days", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # charge | adjustment
    Column("quantity", String(64), nullable=False),
    Column("unit_size", String(32), nullable=False),
    Column("unit_price", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("price_book_version", String(64), nullable=False),
    Column("adjusts", String(36)),
    Column("reason", String(200)),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_billing_details_workspace_day", "workspace_id", "day"),
)

closed_days = Table(
    "closed_days", metadata,
    Column("day", Date, primary_key=True),
    Column("closed_at", UtcDateTime(), nullable=False),
)

# (workspace, closed day) pairs that received late usage and await an adjustment.
late_days = Table(
    "late_days", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("noted_at", UtcDateTime(), nullable=False),
)

# High-consumption alerts (decisions.md 20): fire once when an item's daily amount
# first exceeds the threshold; re-arm after a day below it or a new threshold.
alert_rules = Table(
    "alert_rules", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("item", String(32), primary_key=True),
    Column("threshold_minor", BigInteger, nullable=False),
    Column("armed", Boolean, nullable=False),
    Column("last_day", Date),  # the newest closed day evaluated
    Column("last_fired_day", Date),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("updated_by", String(32), nullable=False),
)

# Who re-rated which days, when and why (price-book corrections).
rerates = Table(
    "rerates", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor", String(320), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("days", Integer, nullable=False),
    Column("adjustments", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),  # Σ of the adjustments made
    Column("price_book", String(64), nullable=False),  # newest version in the book used
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=False),
)

outbox = outbox_table("console_outbox", metadata)

inbox = inbox_table("console_inbox", metadata)
