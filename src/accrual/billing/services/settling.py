"""Settling billing details: each becomes one charge line and one journal entry.

A positive detail is paid by the waterfall (``settlement.charge``): vouchers,
prepaid cards by expiry, cash, then the negative prepaid balance. A negative
correction pays arrears first and then goes back to what paid its line
(``settlement.refund``). Details are settled in message order, many in one
transaction, with set-based reads and writes; every split is a posting.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from sqlalchemy import Connection, bindparam, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.billing.services import ledger
from accrual.contract.errors import Conflict
from accrual.contract.messages import BillingDetail, Envelope
from accrual.infra.bulk import among, insert_rows
from accrual.infra.db import exact_sum
from accrual.money import to_decimal, to_minor

log = logging.getLogger(__name__)

# What identifies a charge line's chain of revisions (a charge and its corrections).
LineKey = tuple[str, date, str, int]  # (workspace, day, item, retention days)
WRITE_OFF = "write_off"  # the journal entry kind of instrument balances written off

_CHARGE_COLUMNS = ("detail_id", "account_id", "console_account_id", "workspace_id", "site", "day",
                   "item", "retention_days", "kind", "revision", "quantity", "unit_size",
                   "unit_price", "amount_minor", "currency", "status", "entry_id", "received_at",
                   "adjusts", "settlement_method")


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
    routed_to: list[str | None] = []
    methods: list[str | None] = []
    to_post: list[int] = []
    for i, detail in enumerate(details):
        account_id, method = payers.get((detail.workspace_id, detail.day), (None, None))
        methods.append(method)
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
    cloud = {i for i in to_post if methods[i] in settlement.CLOUD_METHODS}
    entries = _post_entries(conn, details, amounts, routed_to, to_post, cloud, now)
    insert_rows(conn, t.charges, _CHARGE_COLUMNS, (
        (d.id, routed_to[i], d.billing_account_id, d.workspace_id, d.site, d.day, d.item,
         d.retention_days, d.kind, d.revision, d.quantity, d.unit_size, d.unit_price,
         amounts[i], d.currency, "settled" if routed_to[i] is not None else "unrouted",
         entries.get(i), now, d.adjusts, methods[i] if routed_to[i] is not None else None)
        for i, d in enumerate(details)))
    insert_rows(conn, t.inbox, ("message_id", "type", "applied_at"),
                ((m.id, m.type, now) for m in fresh))
    return {owner for i in to_post if (owner := routed_to[i]) is not None}


class _Books:
    """The locked balances of the accounts a batch touches, kept current as it posts."""

    def __init__(self, conn: Connection, owners: set[str]) -> None:
        a = t.ledger_accounts
        # Every movement of an account is serialised by these row locks (as in
        # ledger.post); taken in id order, so two batches never wait in a cycle.
        locked = select(a.c.id, a.c.owner, a.c.kind, a.c.balance_minor).where(
            among(conn, a.c.owner, owners)).order_by(a.c.id)
        if conn.dialect.name == "postgresql":
            locked = locked.with_for_update()
        self.balances: dict[int, int] = {}  # ledger account id → balance
        self.ids: dict[tuple[str, str], int] = {}  # (owner, postings key) → ledger account id
        for row in conn.execute(locked):
            self.ids[(row.owner, row.kind)] = row.id
            self.balances[row.id] = int(row.balance_minor)
        for kind, ledger_id in conn.execute(select(a.c.kind, a.c.id).where(
                a.c.owner == ledger.SYSTEM, a.c.kind.in_(ledger.SYSTEM_KINDS))):
            self.ids[(ledger.SYSTEM, kind)] = ledger_id
        self.instruments = ledger.instruments_of(conn, owners)
        # Cards and vouchers have accounts of their own (owner = the instrument's id),
        # moved only under their billing account's lock taken above.
        self.source_of: dict[int, tuple[str, str]] = {}  # ledger account id → (key, kind)
        for owner in owners:
            for kind in ledger.CUSTOMER_KINDS:
                if (owner, kind) in self.ids:
                    self.source_of[self.ids[(owner, kind)]] = (kind, kind)
        holder = {i.id: owner for owner, found in self.instruments.items() for i in found}
        if holder:
            for row in conn.execute(select(a.c.id, a.c.owner, a.c.kind, a.c.balance_minor)
                                    .where(among(conn, a.c.owner, holder))):
                self.ids[(holder[row.owner], row.owner)] = row.id
                self.balances[row.id] = int(row.balance_minor)
                self.source_of[row.id] = (row.owner, row.kind)

    def add_instruments(self, conn: Connection, holder: dict[str, str]) -> None:
        """Also the accounts of these instruments (id → billing account), expired and
        written off ones included: a correction gives back what they paid."""
        a = t.ledger_accounts
        wanted = {n: owner for n, owner in holder.items() if (owner, n) not in self.ids}
        if not wanted:
            return
        for row in conn.execute(select(a.c.id, a.c.owner, a.c.kind, a.c.balance_minor)
                                .where(among(conn, a.c.owner, wanted))):
            self.ids[(wanted[row.owner], row.owner)] = row.id
            self.balances[row.id] = int(row.balance_minor)
            self.source_of[row.id] = (row.owner, row.kind)

    def move(self, owner: str, key: str, ledger_id: int, amount_minor: int,
             detail: BillingDetail) -> None:
        """Move a cached balance, refusing (``bounds.BalanceLimitExceeded``) to take it past
        its bound: the whole batch is rolled back, nothing of it is written."""
        bounds.check_balance(owner, key, self.balances[ledger_id], amount_minor,
                             detail.currency, what=f"billing detail {detail.id}")
        self.balances[ledger_id] += amount_minor

    def account(self, owner: str, key: str) -> int:
        return self.ids[(ledger.SYSTEM if key in ledger.SYSTEM_KINDS else owner, key)]

    def holdings(self, owner: str) -> tuple[int, int, list[waterfall.Instrument]]:
        """(cash, prepaid, instruments with their current balances) of ``owner``."""
        cash = self.balances[self.ids[(owner, settlement.CASH)]]
        prepaid = self.balances[self.ids[(owner, settlement.PREPAID)]]
        found = [replace(i, balance_minor=self.balances[self.ids[(owner, i.id)]])
                 for i in self.instruments.get(owner, ())]
        return cash, prepaid, found


def _post_entries(conn: Connection, details: list[BillingDetail], amounts: list[int],
                  owners: list[str | None], to_post: list[int], cloud: set[int], now: datetime
                  ) -> dict[int, int]:
    """``ledger.post`` for each detail in ``to_post``, in order: the journal entry id of
    each (an existing one when its key was posted before with the same amount)."""
    entry_of: dict[int, int] = {}
    if not to_post:
        return entry_of
    e = t.journal_entries
    keys = {i: f"detail/{details[i].id}" for i in to_post}
    digests = {i: ledger.digest(amounts[i]) for i in to_post}
    posted: dict[str, tuple[int, str]] = {
        row.idempotency_key: (row.id, row.request_digest) for row in conn.execute(
            select(e.c.id, e.c.idempotency_key, e.c.request_digest)
            .where(among(conn, e.c.idempotency_key, keys.values())))}
    books = _Books(conn, {o for i in to_post if (o := owners[i]) is not None})
    # What paid each line that a correction in this batch corrects, net, by ledger account.
    refunded = {_line(details[i]) for i in to_post if amounts[i] < 0}
    paid = _paid_by_line(conn, refunded)
    books.add_instruments(conn, {
        source: owner for (owner, *_), line in paid.items() for source, _kind in line
        if source not in ledger.CUSTOMER_KINDS and source != settlement.CLOUD_RECEIVABLE})
    entries: list[tuple[object, ...]] = []  # (kind, owner, reference, key, digest)
    postings: list[tuple[int, int, int]] = []  # (entry index, ledger account id, amount)
    deltas: dict[int, int] = {}
    for i in to_post:
        key, digest = keys[i], digests[i]
        known = posted.get(key)
        if known is not None:
            if known[1] != digest:
                raise Conflict("idempotency_conflict",
                               f"{key!r} was already used for a different request")
            entry_of[i] = known[0]  # negative: posted earlier in this batch (see below)
            continue
        owner = owners[i]
        assert owner is not None
        detail, amount = details[i], amounts[i]
        cash, prepaid, instruments = books.holdings(owner)
        if amount > 0:
            moves = settlement.charge(amount, cash, instruments, detail.item, now,
                                      cloud=i in cloud)
        else:
            line = paid.get((owner, *_line(detail)), {})
            moves = settlement.refund(-amount, prepaid,
                                      {key: (kind, -net) for (key, kind), net in line.items()},
                                      cloud=i in cloud)
        slot = len(entries)
        posted[key] = (-1 - slot, digest)
        entry_of[i] = -1 - slot
        entries.append((detail.kind, owner, detail.id, key, digest))
        account_line = paid.setdefault((owner, *_line(detail)), {})
        for target, moved in moves.items():
            ledger_id = books.account(owner, target)
            postings.append((slot, ledger_id, moved))
            source = books.source_of.get(ledger_id)
            if target == settlement.CLOUD_RECEIVABLE:
                source = (target, target)
            if source is not None:
                account_line[source] = account_line.get(source, 0) + moved
            if ledger.is_cached(target):
                books.move(owner, target, ledger_id, moved, detail)
                deltas[ledger_id] = deltas.get(ledger_id, 0) + moved
        if amount > 0:
            continue
        # What goes back to a card or voucher that has expired since is written off from
        # it at once, in an entry of its own: the line still shows it returned.
        alive = {x.id for x in instruments if x.expires_at > now}
        for target, moved in moves.items():
            if target in ledger.CUSTOMER_KINDS or target in ledger.SYSTEM_KINDS \
                    or target in alive:
                continue
            slot = len(entries)
            entries.append((WRITE_OFF, owner, target, f"expiry/{target}/{detail.id}",
                            ledger.digest(target, moved)))
            for account_key, amount_moved in settlement.write_off(target, moved).items():
                ledger_id = books.account(owner, account_key)
                postings.append((slot, ledger_id, amount_moved))
                if ledger.is_cached(account_key):
                    books.move(owner, account_key, ledger_id, amount_moved, detail)
                    deltas[ledger_id] = deltas.get(ledger_id, 0) + amount_moved
    ids = _insert_entries(conn, entries, now)
    insert_rows(conn, t.postings, ("entry_id", "ledger_account_id", "amount_minor"),
                ((ids[slot], ledger_id, moved) for slot, ledger_id, moved in postings))
    changed = [{"b_id": ledger_id, "b_delta": delta}
               for ledger_id, delta in sorted(deltas.items()) if delta]
    if changed:
        a = t.ledger_accounts
        conn.execute(update(a).where(a.c.id == bindparam("b_id")).values(
            balance_minor=a.c.balance_minor + bindparam("b_delta")), changed)
    return {i: ids[-1 - entry] if entry < 0 else entry for i, entry in entry_of.items()}


def _line(detail: BillingDetail) -> LineKey:
    return (detail.workspace_id, detail.day, detail.item, detail.retention_days)


Paid = dict[tuple[str, str], int]  # (postings key, kind) → Σ postings


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


def _insert_entries(conn: Connection, entries: list[tuple[object, ...]],
                    now: datetime) -> list[int]:
    """Journal entries (kind, account, reference, key, digest) → their ids, in order."""
    if not entries:
        return []
    e = t.journal_entries
    if conn.dialect.name == "postgresql":
        ids = list(conn.execute(
            select(func.nextval(func.pg_get_serial_sequence(e.name, "id")))
            .select_from(func.generate_series(1, len(entries)))).scalars())
        insert_rows(conn, e, ("id", "idempotency_key", "request_digest", "kind",
                              "account_id", "reference", "created_at"),
                    ((entry_id, key, digest, kind, owner, reference, now)
                     for entry_id, (kind, owner, reference, key, digest)
                     in zip(ids, entries, strict=True)))
        return ids
    return [conn.execute(insert(e).values(
        idempotency_key=key, request_digest=digest, kind=kind, account_id=owner,
        reference=reference, created_at=now).returning(e.c.id)).scalar_one()
        for kind, owner, reference, key, digest in entries]


def bindings_in_force(conn: Connection, wanted: set[tuple[str, date]]
                      ) -> dict[tuple[str, date], tuple[str, str]]:
    """``BillingAccounts.binding_in_force`` for many (workspace, day) pairs in one query:
    (account, settlement method) of the binding with the latest effective_from <= day,
    else of the workspace's first binding."""
    b = t.bindings
    history: dict[str, list[tuple[date, str, str]]] = {}
    for workspace_id, effective_from, account_id, method in conn.execute(
            select(b.c.workspace_id, b.c.effective_from, b.c.account_id, b.c.settlement_method)
            .where(among(conn, b.c.workspace_id, {w for w, _ in wanted}))
            .order_by(b.c.workspace_id, b.c.effective_from)):
        history.setdefault(workspace_id, []).append((effective_from, str(account_id), method))
    found: dict[tuple[str, date], tuple[str, str]] = {}
    for workspace_id, day in wanted:
        rows = history.get(workspace_id)
        if not rows:
            continue
        position = bisect_right(rows, day, key=lambda r: r[0])
        _, account_id, method = rows[position - 1] if position else rows[0]
        found[(workspace_id, day)] = (account_id, method)
    return found
