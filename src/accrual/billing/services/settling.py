"""Settling billing details: each becomes one charge line and one journal entry.

A positive detail is paid by the waterfall (``settlement.charge``): vouchers,
prepaid cards by expiry, cash, then the negative prepaid balance. A negative
correction pays arrears first and then goes back to what paid its line
(``settlement.refund``). Details are settled in message order, many in one
transaction, with set-based reads and writes; every split is a posting.

A workspace bound by a cloud marketplace method is settled through the cloud
(what vouchers and cards leave goes to ``settlement.CLOUD_RECEIVABLE``) only
while the binding's cloud account can still be billed (``BILLABLE_CLOUD``);
without one, or once it is cancelled or failed, the billing account's wallet
pays, as for ``billing_center``, so that no money is left to a dead
subscription. The charge line records the method really used, and for the
cloud its cloud account and what the line left to it (``cloud_minor``), which
the marketplace reporter cuts into reports.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import Connection, select

from accrual.billing.adapters import tables as t
from accrual.billing.domain import bounds, settlement
from accrual.billing.services import ledger
from accrual.contract.messages import BillingDetail, Envelope
from accrual.infra.bulk import among, insert_rows
from accrual.infra.db import exact_sum
from accrual.money import to_decimal, to_minor

log = logging.getLogger(__name__)

# What identifies a charge line's chain of revisions (a charge and its corrections).
LineKey = tuple[str, date, str, int]  # (workspace, day, item, retention days)
Paid = dict[tuple[str, str], int]  # (postings key, kind) → Σ postings of one line
WRITE_OFF = "write_off"  # the journal entry kind of instrument balances written off

_CHARGE_COLUMNS = ("detail_id", "account_id", "console_account_id", "workspace_id", "site", "day",
                   "item", "retention_days", "kind", "revision", "quantity", "unit_size",
                   "unit_price", "amount_minor", "currency", "status", "entry_id", "received_at",
                   "adjusts", "settlement_method", "cloud_account_id", "cloud_minor")
# Cloud accounts that still take what a cloud-settled day leaves (cloud_accounts.status):
# a pending one is reported once confirmed, an unsubscribing one in its final hour, a
# suspended one once reinstated (or, if it never is, the wallet pays when it ends).
BILLABLE_CLOUD = ("active", "pending", "unsubscribing", "suspended")
WALLET = "billing_center"  # the settlement method of the wallet


def settle(conn: Connection, messages: Sequence[Envelope], currency: str,
           now: datetime) -> set[str]:
    """Apply these billing-detail messages once each (the inbox keeps their ids); the
    billing accounts whose balances moved."""
    done = set(conn.execute(select(t.inbox.c.message_id).where(
        among(conn, t.inbox.c.message_id, [m.id for m in messages]))).scalars())
    fresh: list[Envelope] = []
    for message in messages:
        if message.id not in done:
            done.add(message.id)
            fresh.append(message)
    if not fresh:
        return set()
    details = [BillingDetail.model_validate(m.payload) for m in fresh]
    amounts = []
    for detail in details:
        if detail.currency != currency:
            log.error("detail %s in %s reached the %s billing center; left unrouted",
                      detail.id, detail.currency, currency)
        amount_minor = to_minor(to_decimal(detail.amount), detail.currency)
        # Before any arithmetic: a detail no posting can carry fails loudly (never clamped).
        bounds.check_posting(detail.billing_account_id or detail.workspace_id, settlement.REVENUE,
                             amount_minor, detail.currency, what=f"billing detail {detail.id}")
        amounts.append(amount_minor)
    payers = bindings_in_force(conn, {(d.workspace_id, d.day) for d in details})
    billable = _billable_cloud_accounts(conn, {p.cloud_account_id for p in payers.values()
                                               if p.cloud_account_id is not None})
    routed_to: list[str | None] = []
    methods: list[str | None] = []
    clouds: list[str | None] = []  # the cloud account that takes what the wallet leaves
    to_post: list[int] = []
    for i, detail in enumerate(details):
        payer = payers.get((detail.workspace_id, detail.day))
        account_id = payer.account_id if payer is not None else None
        method = payer.settlement_method if payer is not None else None
        cloud_account = payer.cloud_account_id if payer is not None else None
        if method in settlement.CLOUD_METHODS and cloud_account not in billable:
            method, cloud_account = WALLET, None
        methods.append(method)
        clouds.append(cloud_account if method in settlement.CLOUD_METHODS else None)
        if account_id is not None and detail.billing_account_id not in (None, account_id):
            # decisions.md 12: our binding table decides; the mismatch is only logged.
            log.warning("detail %s: console named account %s, binding says %s", detail.id,
                        detail.billing_account_id, account_id)
        routed = account_id is not None and detail.currency == currency
        routed_to.append(account_id if routed else None)
        if routed and amounts[i] != 0:
            to_post.append(i)
        elif not routed:
            log.warning("detail %s for workspace %s on %s has no binding: left unrouted",
                        detail.id, detail.workspace_id, detail.day)
    cloud = {i for i in to_post if clouds[i] is not None}
    entries = _post_entries(conn, details, amounts, routed_to, to_post, cloud, now)
    insert_rows(conn, t.charges, _CHARGE_COLUMNS, (
        (d.id, routed_to[i], d.billing_account_id, d.workspace_id, d.site, d.day, d.item,
         d.retention_days, d.kind, d.revision, d.quantity, d.unit_size, d.unit_price,
         amounts[i], d.currency, "settled" if routed_to[i] is not None else "unrouted",
         entries[i][0] if i in entries else None, now, d.adjusts,
         methods[i] if routed_to[i] is not None else None,
         *((clouds[i], entries[i][1]) if i in cloud else (None, None)))
        for i, d in enumerate(details)))
    insert_rows(conn, t.inbox, ("message_id", "type", "applied_at"),
                ((m.id, m.type, now) for m in fresh))
    return {owner for i in to_post if (owner := routed_to[i]) is not None}


def _post_entries(conn: Connection, details: list[BillingDetail], amounts: list[int],
                  owners: list[str | None], to_post: list[int], cloud: set[int], now: datetime
                  ) -> dict[int, tuple[int, int]]:
    """One journal entry for each detail in ``to_post``, in order, by ``ledger.post_many``:
    the journal entry id of each (an existing one when its key was posted before with the
    same amount) and what it left to the cloud account (the negated posting on the cloud
    receivable, whose balance goes below zero as the vendor is to bill more)."""
    if not to_post:
        return {}
    # What paid each line that a correction in this batch corrects, net, by ledger account;
    # kept current as the batch posts, so a correction sees the charge before it.
    paid = _paid_by_line(conn, {_line(details[i]) for i in to_post if amounts[i] < 0})
    instruments_of_line = {
        source: owner for (owner, *_), line in paid.items() for source, _kind in line
        if source not in ledger.CUSTOMER_KINDS and source != settlement.CLOUD_RECEIVABLE}
    entries = [_entry(details[i], amounts[i], owner, i in cloud, now, paid)
               for i in to_post if (owner := owners[i]) is not None]
    posted = ledger.post_many(conn, entries, now, with_instruments=True,
                              instruments_of_line=instruments_of_line)
    return {i: (p.entry_id, -p.postings.get(settlement.CLOUD_RECEIVABLE, 0))
            for i, p in zip(to_post, posted, strict=True)}


def _entry(detail: BillingDetail, amount: int, owner: str, cloud: bool, now: datetime,
           paid: dict[tuple[str, str, date, str, int], Paid]) -> ledger.Entry:
    """The journal entry of one routed detail: a charge paid by the waterfall, or a
    correction given back to what paid its line (then written off from instruments that
    have expired since, in entries of their own: the line still shows it returned)."""
    line_key = (owner, *_line(detail))

    def compute(held: ledger.Holdings) -> settlement.Postings:
        line = paid.get(line_key, {})
        if amount > 0:
            moves = settlement.charge(amount, held.balances[settlement.CASH], held.instruments,
                                      detail.item, now, cloud=cloud)
        else:
            moves = settlement.refund(-amount, held.balances[settlement.PREPAID],
                                      {key: (kind, -net) for (key, kind), net in line.items()},
                                      cloud=cloud)
        kinds = {i.id: i.kind for i in held.instruments} | dict(line.keys())
        account_line = paid.setdefault(line_key, {})
        for target, moved in moves.items():
            if target in ledger.CUSTOMER_KINDS or target == settlement.CLOUD_RECEIVABLE:
                source: tuple[str, str] | None = (target, target)
            elif target in ledger.SYSTEM_KINDS:
                source = None
            else:
                source = (target, kinds[target])
            if source is not None:
                account_line[source] = account_line.get(source, 0) + moved
        return moves

    def write_offs(held: ledger.Holdings, moves: settlement.Postings) -> list[ledger.Entry]:
        if amount > 0:
            return []
        alive = {x.id for x in held.instruments if x.expires_at > now}
        return [ledger.Entry(owner, f"expiry/{target}/{detail.id}",
                             ledger.digest(target, moved), WRITE_OFF, target,
                             settlement.write_off(target, moved),
                             what=f"billing detail {detail.id}")
                for target, moved in moves.items()
                if target not in ledger.CUSTOMER_KINDS and target not in ledger.SYSTEM_KINDS
                and target not in alive]

    return ledger.Entry(owner, f"detail/{detail.id}", ledger.digest(amount), detail.kind,
                        detail.id, compute, what=f"billing detail {detail.id}", then=write_offs)


def _line(detail: BillingDetail) -> LineKey:
    return (detail.workspace_id, detail.day, detail.item, detail.retention_days)


def _paid_by_line(conn: Connection, lines: set[LineKey]
                  ) -> dict[tuple[str, str, date, str, int], Paid]:
    """Net postings on the payer's own accounts (cash, prepaid, each card and voucher,
    written off or not) and on the cloud receivable, of every settled revision of these
    lines, per paying account: ``{(account, *line): {(key, kind): Σ amount}}``."""
    found: dict[tuple[str, str, date, str, int], Paid] = {}
    if not lines:
        return found
    c, p, a, i = t.charges, t.postings, t.ledger_accounts, t.instruments
    for row in conn.execute(
            select(c.c.account_id, c.c.workspace_id, c.c.day, c.c.item, c.c.retention_days,
                   a.c.owner, a.c.kind, exact_sum(p.c.amount_minor).label("net"))
            .join(p, p.c.entry_id == c.c.entry_id)
            .join(a, a.c.id == p.c.ledger_account_id)
            .outerjoin(i, i.c.id == a.c.owner)
            .where(among(conn, c.c.workspace_id, {w for w, *_ in lines}),
                   c.c.day.in_({d for _, d, *_ in lines}),
                   (a.c.owner != ledger.SYSTEM) | (a.c.kind == settlement.CLOUD_RECEIVABLE))
            .group_by(c.c.account_id, c.c.workspace_id, c.c.day, c.c.item, c.c.retention_days,
                      a.c.owner, a.c.kind, i.c.expires_at)
            # In the order the waterfall spends them (cards by expiry), which give_back
            # reverses: instruments of one kind get money back latest expiry first.
            .order_by(i.c.expires_at, a.c.owner)):
        if (row.workspace_id, row.day, row.item, row.retention_days) not in lines:
            continue
        key = (row.account_id, row.workspace_id, row.day, row.item, row.retention_days)
        source = row.kind if row.owner in (ledger.SYSTEM, row.account_id) else row.owner
        found.setdefault(key, {})[(source, row.kind)] = int(row.net)
    return found


class Payer(NamedTuple):
    """Who pays a workspace's day, and how (its binding in force that day)."""

    account_id: str
    settlement_method: str
    cloud_account_id: str | None  # the binding's cloud account, for a cloud method


def bindings_in_force(conn: Connection, wanted: set[tuple[str, date]]
                      ) -> dict[tuple[str, date], Payer]:
    """``BillingAccounts.binding_in_force`` for many (workspace, day) pairs in one query:
    (account, settlement method, cloud account) of the binding with the latest
    effective_from <= day, else of the workspace's first binding."""
    b = t.bindings
    history: dict[str, list[tuple[date, Payer]]] = {}
    for workspace_id, effective_from, account_id, method, cloud_account_id in conn.execute(
            select(b.c.workspace_id, b.c.effective_from, b.c.account_id, b.c.settlement_method,
                   b.c.cloud_account_id)
            .where(among(conn, b.c.workspace_id, {w for w, _ in wanted}))
            .order_by(b.c.workspace_id, b.c.effective_from)):
        history.setdefault(workspace_id, []).append(
            (effective_from, Payer(str(account_id), method, cloud_account_id)))
    found: dict[tuple[str, date], Payer] = {}
    for workspace_id, day in wanted:
        rows = history.get(workspace_id)
        if not rows:
            continue
        position = bisect_right(rows, day, key=lambda r: r[0])
        found[(workspace_id, day)] = (rows[position - 1] if position else rows[0])[1]
    return found


def _billable_cloud_accounts(conn: Connection, ids: set[str]) -> set[str]:
    """Those of these cloud accounts that exist and may still be billed."""
    if not ids:
        return set()
    c = t.cloud_accounts
    return set(conn.execute(select(c.c.id).where(among(conn, c.c.id, ids),
                                                 c.c.status.in_(BILLABLE_CLOUD))).scalars())
