"""The billing center's own schema (SQLAlchemy Core). Migrations live in ../migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accrual.infra.db import UtcDateTime
from accrual.infra.outbox import inbox_table, outbox_table

metadata = MetaData()

accounts = Table(
    "billing_accounts", metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),  # lower-cased
    Column("email", String(320), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("language", String(8), nullable=False),
    Column("currency", String(3), nullable=False),
    # pending: made by a registration not yet confirmed; cannot log in.
    Column("status", String(16), nullable=False),
    Column("registration_key", String(128), unique=True),
    Column("registration_digest", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("activated_at", UtcDateTime()),
    # Enterprise certification (business-licence name + taxpayer id): needed for
    # invoices, and equal on both sides of a change of binding.
    Column("enterprise_name", String(200)),
    Column("taxpayer_id", String(64)),
    Column("certified_at", UtcDateTime()),
    Column("contact_name", String(100)),
    Column("phone", String(32)),
)

sessions = Table(
    "billing_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

workspaces = Table(
    "known_workspaces", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("site", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("owner_email", String(320), nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# The source of truth for who pays for a workspace on a given day
# (decisions.md 11–12): the row with the latest effective_from <= day.
bindings = Table(
    "bindings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("settlement_method", String(32), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("workspace_id", "effective_from", name="uq_bindings_workspace_day"),
)

# One-time codes mailed to an account's owner to bind a workspace to it (upgrade).
binding_codes = Table(
    "binding_codes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False, index=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("used_at", UtcDateTime()),
)

ledger_accounts = Table(
    "ledger_accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # A billing account id, or "system" for the center's own accounts.
    Column("owner", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    # Cached Σ postings, updated in the same transaction as the postings and
    # checked against them by the ledger audit.
    Column("balance_minor", BigInteger, nullable=False),
    UniqueConstraint("owner", "kind", name="uq_ledger_accounts_owner_kind"),
)

journal_entries = Table(
    "journal_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("request_digest", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(32), nullable=False, index=True),
    Column("reference", String(200)),
    Column("created_at", UtcDateTime(), nullable=False),
)

postings = Table(
    "postings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, ForeignKey("journal_entries.id"), nullable=False, index=True),
    Column("ledger_account_id", Integer, ForeignKey("ledger_accounts.id"), nullable=False,
           index=True),
    Column("amount_minor", BigInteger, nullable=False),
    CheckConstraint("amount_minor <> 0", name="ck_postings_nonzero"),
)

# Billing details as received and settled: the lines of daily bills.
charges = Table(
    "charges", metadata,
    Column("detail_id", String(36), primary_key=True),
    Column("account_id", String(32)),  # routed by `bindings`; NULL when unrouted
    Column("console_account_id", String(32)),  # what the console believed
    Column("workspace_id", String(32), nullable=False),
    Column("site", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("item", String(32), nullable=False),
    Column("retention_days", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("unit_size", String(32), nullable=False),
    Column("unit_price", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # settled | unrouted
    Column("entry_id", Integer, ForeignKey("journal_entries.id")),
    Column("received_at", UtcDateTime(), nullable=False),
    # The monthly bill this line landed on; NULL until that bill is generated.
    Column("bill_id", Integer, ForeignKey("monthly_bills.id")),
    Index("ix_charges_account_day", "account_id", "day"),
    Index("ix_charges_unbilled", "account_id", "bill_id"),
)

# Generated on the 3rd for the month before and never changed afterwards; a
# line that arrives later lands on the next bill generated (decisions.md 3).
monthly_bills = Table(
    "monthly_bills", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("month", Date, nullable=False),  # its first day
    Column("currency", String(3), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("generated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("account_id", "month", name="uq_monthly_bills_account_month"),
)

inbox = inbox_table("billing_inbox", metadata)

outbox = outbox_table("billing_outbox", metadata)

# -- invoices (reference-billing.md §4.8, decisions.md 21) -------------------

# Invoice information: what an invoice is made out to. Deleting one only marks
# it (requests keep a snapshot of what they were made out to).
invoice_profiles = Table(
    "invoice_profiles", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False,
           index=True),
    # vat_ordinary | vat_special | electronic_ordinary
    Column("invoice_type", String(32), nullable=False),
    Column("title", String(200), nullable=False),  # the certified enterprise name
    Column("taxpayer_id", String(64), nullable=False),
    Column("registered_address", String(300)),  # required for vat_special
    Column("registered_phone", String(32)),  # required for vat_special
    Column("bank_name", String(200)),  # required for vat_special
    Column("bank_account", String(64)),  # required for vat_special
    Column("email", String(320)),  # required for electronic_ordinary
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime()),
)

# Where paper invoices are posted.
mailing_addresses = Table(
    "mailing_addresses", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False,
           index=True),
    Column("recipient", String(100), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("address", String(500), nullable=False),
    Column("postcode", String(16)),
    Column("email", String(320)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime()),
)

# A request for one invoice against one or more monthly bills. The invoice
# information and the address are copied as they were when it was made.
invoice_requests = Table(
    "invoice_requests", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False,
           index=True),
    Column("profile_id", Integer, ForeignKey("invoice_profiles.id"), nullable=False),
    Column("address_id", Integer, ForeignKey("mailing_addresses.id")),  # paper types only
    Column("invoice_type", String(32), nullable=False),
    Column("profile_snapshot", Text, nullable=False),  # JSON
    Column("address_snapshot", Text),  # JSON
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # requested | issued | rejected
    Column("invoice_number", String(64), unique=True),  # set when issued
    Column("reject_reason", String(500)),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("issued_at", UtcDateTime()),
    Column("rejected_at", UtcDateTime()),
    CheckConstraint("amount_minor > 0", name="ck_invoice_requests_positive"),
    Index("ix_invoice_requests_status", "status", "requested_at"),
)

# How much of each monthly bill a request takes; requests not rejected count
# against the bill's invoiceable amount.
invoice_request_bills = Table(
    "invoice_request_bills", metadata,
    Column("request_id", Integer, ForeignKey("invoice_requests.id"), primary_key=True),
    Column("bill_id", Integer, ForeignKey("monthly_bills.id"), primary_key=True, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    CheckConstraint("amount_minor > 0", name="ck_invoice_request_bills_positive"),
)

# -- online recharge through a payment gateway (reference-billing.md §4.2) ----

# One order per (account, Idempotency-Key). It turns `paid` once, in the same
# transaction as its cash credit, whose journal entry is keyed by the gateway's
# transaction id; a transaction id pays at most one order.
recharge_orders = Table(
    "recharge_orders", metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_digest", String(64), nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("return_url", String(500)),
    Column("redirect_url", Text),  # NULL until the gateway has opened the payment
    Column("status", String(16), nullable=False),  # pending | paid
    Column("transaction_id", String(128)),
    Column("entry_id", Integer, ForeignKey("journal_entries.id")),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("paid_at", UtcDateTime()),
    UniqueConstraint("account_id", "idempotency_key", name="uq_recharge_orders_account_key"),
    UniqueConstraint("gateway", "transaction_id", name="uq_recharge_orders_transaction"),
    CheckConstraint("amount_minor > 0", name="ck_recharge_orders_positive"),
)
