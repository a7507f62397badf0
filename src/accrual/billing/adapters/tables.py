"""The billing center's own schema (SQLAlchemy Core). Migrations live in ../migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

from accrual.billing.domain.bounds import MAX_BALANCE_MINOR, MAX_POSTING_MINOR
from accrual.infra.db import UtcDateTime
from accrual.infra.outbox import inbox_table, outbox_table
from accrual.infra.passwords import password_resets_table
from accrual.infra.sign_in_failures import sign_in_failures_table

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

# One-time tickets into the billing center from a console (the owner's password-less jump).
sign_in_tickets = Table(
    "billing_sign_in_tickets", metadata,
    Column("ticket_hash", String(64), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("workspace_id", String(32), nullable=False),
    Column("destination", String(16), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime()),
)

# Raises to administrator of a commercial workspace, waiting for (or given) the approval
# of the account that pays for it (reference-billing.md 1.4); sent by the console.
promotion_requests = Table(
    "promotion_requests", metadata,
    Column("request_id", String(32), primary_key=True),
    Column("workspace_id", String(32), nullable=False, index=True),
    Column("site", String(32), nullable=False),
    Column("workspace_name", String(200), nullable=False),
    Column("member_email", String(320), nullable=False),
    Column("requested_by_email", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | withdrawn
    Column("decided_at", UtcDateTime()),
    Column("decided_by", String(32)),  # the billing account that answered
)

# Failed sign-ins per account and client address (the throttle's counters).
sign_in_failures = sign_in_failures_table("billing_sign_in_failures", metadata)

# One-time codes for a forgotten password (hashes only).
password_resets = password_resets_table("billing_password_resets", metadata)

workspaces = Table(
    "known_workspaces", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("site", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("owner_email", String(320), nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Set when its console dissolved it: no longer among the workspaces an account pays for.
    Column("dissolved_at", UtcDateTime()),
    # The marketplace it was activated from (aws, ...); NULL when activated on the website.
    # A workspace activated from a marketplace settles only through that vendor
    # (reference-billing.md §1.6 rule 9) unless its subscription was cancelled.
    Column("activated_via", String(16)),
)

# The source of truth for who pays for a workspace on a given day
# (decisions.md 11–12): the row with the latest effective_from <= day.
bindings = Table(
    "bindings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("settlement_method", String(32), nullable=False),
    # The cloud account that pays what vouchers and cards leave, for a cloud method.
    Column("cloud_account_id", String(32)),
    Column("effective_from", Date, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("workspace_id", "effective_from", name="uq_bindings_workspace_day"),
    # The workspaces an account pays for (arrears cases, account views).
    Index("ix_bindings_account", "account_id"),
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
    # A billing account id (its cash and prepaid accounts), an instrument id
    # (each prepaid card and voucher has an account of its own), or "system"
    # for the center's own accounts.
    Column("owner", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    # Cached Σ postings, updated in the same transaction as the postings and
    # checked against them by the ledger audit.
    Column("balance_minor", BigInteger, nullable=False),
    UniqueConstraint("owner", "kind", name="uq_ledger_accounts_owner_kind"),
    # The last line of defence: only the prepaid balance may go below zero
    # (arrears); cash, cards and vouchers never do. The center's own accounts
    # are not cached and stay at zero.
    CheckConstraint("kind = 'prepaid' OR balance_minor >= 0",
                    name="ck_ledger_accounts_not_overdrawn"),
    # Checked by the ledger before any write (domain/bounds.py); this is the last line.
    CheckConstraint(f"balance_minor BETWEEN {-MAX_BALANCE_MINOR} AND {MAX_BALANCE_MINOR}",
                    name="ck_ledger_accounts_balance_bound"),
)

journal_entries = Table(
    "journal_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Room for a client's Idempotency-Key (≤ 255) behind its prefix ("card/<account>/").
    Column("idempotency_key", String(320), nullable=False, unique=True),
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
    CheckConstraint(f"amount_minor BETWEEN {-MAX_POSTING_MINOR} AND {MAX_POSTING_MINOR}",
                    name="ck_postings_amount_bound"),
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
    # The detail a correction adjusts (its refund goes back the way it was paid).
    Column("adjusts", String(36)),
    # How it was settled (NULL when unrouted): billing_center, or a cloud marketplace
    # whose account takes what vouchers and cards leave (``cloud_receivable``).
    Column("settlement_method", String(32)),
    # For a cloud method: the cloud account of the binding in force, what this line left
    # to it (signed minor units: a correction gives back), and the marketplace charge
    # that took that amount into a report (NULL until the reporter's next cut).
    Column("cloud_account_id", String(32)),
    Column("cloud_minor", BigInteger),
    Column("marketplace_charge_id", Integer),
    Index("ix_charges_account_day", "account_id", "day"),
    Index("ix_charges_cloud_uncut", "cloud_account_id", "marketplace_charge_id"),
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

# -- prepaid cards and vouchers (reference-billing.md §4.3–4.4, decisions.md 15–16) --

# One row per card or voucher; what is left on it is the balance of its own
# ledger account (``ledger_accounts.owner`` = this id). An instrument past its
# expiry pays nothing; the expiry job writes the rest off and marks it expired.
instruments = Table(
    "instruments", metadata,
    Column("id", String(32), primary_key=True),  # the card or voucher number
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("kind", String(32), nullable=False),  # card | voucher_standard | voucher_discount
    # purchase (card from cash) | operator | bonus (discount voucher for a card) | code
    Column("source", String(16), nullable=False),
    Column("face_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_cash_minor", BigInteger, nullable=False),  # what cash paid for it
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # active | expired
    Column("origin", String(64)),  # the card a bonus came with, or the activation code's id
    Column("entry_id", Integer, ForeignKey("journal_entries.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expired_at", UtcDateTime()),
    Column("note", String(200)),
    CheckConstraint("face_minor > 0", name="ck_instruments_face_positive"),
    Index("ix_instruments_account", "account_id", "kind", "expires_at"),
    Index("ix_instruments_expiry", "status", "expires_at"),
)

# Single-use voucher activation codes made by the operator; only a hash is kept.
voucher_codes = Table(
    "voucher_codes", metadata,
    Column("id", String(32), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),  # voucher_standard | voucher_discount
    Column("face_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("validity_days", Integer, nullable=False),  # from activation
    Column("redeem_by", UtcDateTime(), nullable=False),  # the code itself expires
    Column("created_at", UtcDateTime(), nullable=False),
    Column("note", String(200)),
    Column("redeemed_at", UtcDateTime()),
    Column("redeemed_by", String(32), ForeignKey("billing_accounts.id")),
    Column("instrument_id", String(32), ForeignKey("instruments.id")),
    CheckConstraint("face_minor > 0", name="ck_voucher_codes_face_positive"),
)

# -- arrears and locks (reference-billing.md §5, decisions.md 17–19) ---------

# One case per stretch of arrears of an account: opened by the first settlement
# that leaves the prepaid balance negative, closed when it is paid (or the
# workspaces leave the account's settlement). At most one open case an account.
arrears_cases = Table(
    "arrears_cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("lock_at", UtcDateTime(), nullable=False),
    Column("reminded_at", UtcDateTime()),
    Column("locked_at", UtcDateTime()),
    Column("ended_at", UtcDateTime()),
    Column("end_reason", String(32)),  # settled | method_changed
    Column("open", Boolean, nullable=True),  # TRUE while open, NULL after: unique below
    UniqueConstraint("account_id", "open", name="uq_arrears_cases_one_open"),
    Index("ix_arrears_cases_due", "ended_at", "lock_at"),
)

# Which workspaces a case locked, so that ending it unlocks exactly those.
arrears_locks = Table(
    "arrears_locks", metadata,
    Column("case_id", Integer, ForeignKey("arrears_cases.id"), primary_key=True),
    Column("workspace_id", String(32), primary_key=True),
    Column("locked_at", UtcDateTime(), nullable=False),
    Column("unlocked_at", UtcDateTime()),
)

# Mails to send, written in the transaction that decided them and sent by the
# mail job afterwards: a mail is never sent for something rolled back.
mail_outbox = Table(
    "billing_mail_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("template", String(32), nullable=False),
    Column("language", String(8), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("values_json", Text, nullable=False),
    Column("dedup_key", String(200), unique=True),  # one mail per event and recipient
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("last_error", String(500)),
    Index("ix_billing_mail_outbox_due", "sent_at", "next_attempt_at"),
)

# What each workspace's console was last told about its arrears state (the
# workspace.lock messages) and under which version: one counter per workspace,
# so a later state always carries a higher version, whichever account's case
# sent it (a workspace may change accounts while either is in arrears).
lock_states = Table(
    "workspace_lock_states", metadata,
    Column("workspace_id", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # countdown | locked | clear
    # The arrears case that set the state; NULL for a marketplace cancellation's lock.
    Column("case_id", Integer, ForeignKey("arrears_cases.id")),
    Column("lock_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_workspace_lock_states_case", "case_id"),
)

# -- settlement methods (reference-billing.md §4.1, §6; decisions.md 11, 14) ----

# Cloud marketplace accounts a billing account may settle workspaces through.
cloud_accounts = Table(
    "cloud_accounts", metadata,
    Column("id", String(32), primary_key=True),
    # NULL while a buyer sent by a marketplace has not registered or signed in yet.
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), index=True),
    Column("vendor", String(16), nullable=False),  # aws | aliyun | huawei | azure
    Column("external_id", String(128), nullable=False),  # the vendor's customer/account id
    # pending (resolved, not yet confirmed by the vendor) | active | unsubscribing (the
    # vendor's final-usage window) | cancelled | failed
    Column("status", String(16), nullable=False),
    Column("linked_at", UtcDateTime(), nullable=False),
    Column("cancelled_at", UtcDateTime()),
    # What the vendor names the subscription by (AWS: ProductCode, LicenseArn and the
    # legacy CustomerIdentifier); NULL for links made by the operator.
    Column("product_code", String(255)),
    Column("license_ref", String(2048)),
    Column("customer_ref", String(255)),
    Column("unsubscribing_at", UtcDateTime()),  # when the final-usage window opened
    Index("ix_cloud_accounts_vendor_external", "vendor", "external_id"),
)

# Every change of a workspace's settlement method, for the once-a-month rule and audit.
settlement_changes = Table(
    "settlement_changes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False),
    Column("account_id", String(32), ForeignKey("billing_accounts.id"), nullable=False),
    Column("from_method", String(32), nullable=False),
    Column("to_method", String(32), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Index("ix_settlement_changes_workspace", "workspace_id", "requested_at"),
)

# A request refused for the state of the account (a card purchase with too little cash)
# stays refused under its idempotency key: a retry answers the same refusal and never
# succeeds later by surprise (RELIABILITY.md 2.8); a new attempt takes a new key.
refused_requests = Table(
    "refused_requests", metadata,
    Column("idempotency_key", String(320), primary_key=True),
    Column("request_digest", String(64), nullable=False),
    Column("code", String(64), nullable=False),
    Column("message", String(500), nullable=False),
    Column("refused_at", UtcDateTime(), nullable=False),
)


# -- cloud marketplaces (reference-billing.md §6, decisions.md 13, 23) ---------

# A buyer sent by a marketplace, resolved and waiting to register or sign in; its id
# travels with the buyer's browser through the activation pages and calls.
marketplace_activations = Table(
    "marketplace_activations", metadata,
    Column("id", String(40), primary_key=True),
    Column("vendor", String(16), nullable=False),
    Column("cloud_account_id", String(32), ForeignKey("cloud_accounts.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("account_id", String(32)),  # the billing account that took it
    Column("completed_at", UtcDateTime()),
)

# One report to a marketplace: the whole units of the listing's money dimension that
# one cloud account owes for one period (decisions.md 23). Sent exactly once: the
# state is persisted before and after each send; a resend is byte-identical.
marketplace_charges = Table(
    "marketplace_charges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cloud_account_id", String(32), ForeignKey("cloud_accounts.id"), nullable=False),
    Column("vendor", String(16), nullable=False),
    Column("dimension", String(255), nullable=False),
    Column("period_start", UtcDateTime(), nullable=False),
    Column("quantity", BigInteger, nullable=False),  # whole units, never negative
    Column("amount_minor", BigInteger, nullable=False),  # quantity × the unit
    # pending | sent | accepted | duplicate | refused
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("deadline_at", UtcDateTime(), nullable=False),  # the vendor's lateness limit
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("settled_at", UtcDateTime()),
    Column("record_id", String(255)),  # the vendor's id of the accepted record
    Column("last_error", String(500)),
    Column("alerted_at", UtcDateTime()),
    UniqueConstraint("cloud_account_id", "dimension", "period_start",
                     name="uq_marketplace_charges_period"),
    Index("ix_marketplace_charges_due", "status", "next_attempt_at"),
)

# What each cloud account owes below one unit, or has been given back beyond what it
# was charged: carried into its next report, never sent as a negative quantity.
marketplace_carry = Table(
    "marketplace_carry", metadata,
    Column("cloud_account_id", String(32), ForeignKey("cloud_accounts.id"), primary_key=True),
    Column("carried_minor", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Every vendor notification accepted, by the vendor's message id: a replay changes nothing.
marketplace_notifications = Table(
    "marketplace_notifications", metadata,
    Column("message_id", String(128), primary_key=True),
    Column("vendor", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("outcome", String(200), nullable=False),
)

# Workspaces locked because the cloud account that paid for them was cancelled
# (decisions.md 13); unlocked by re-subscribing, another cloud account or the wallet.
cloud_locks = Table(
    "cloud_locks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), nullable=False, index=True),
    Column("cloud_account_id", String(32), ForeignKey("cloud_accounts.id"), nullable=False),
    Column("locked_at", UtcDateTime(), nullable=False),
    Column("unlocked_at", UtcDateTime()),
    Column("unlock_reason", String(32)),
)

# Nonces of signed vendor calls (KooGallery's activities), each taken once: the primary
# key makes a second insert of one fail, so two processes never both accept a replay.
# Kept until ``keep_until`` (past it the call's timestamp is refused), then pruned.
marketplace_nonces = Table(
    "marketplace_nonces", metadata,
    Column("scope", String(16), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False),
    Column("keep_until", UtcDateTime(), nullable=False, index=True),
)
