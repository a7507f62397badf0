"""The double-entry ledger: idempotent journal entries, cached balances, audit.

Every movement is one journal entry whose postings sum to zero; balances are
the sums of postings, cached on the ledger account in the same transaction
and checked against the postings by :func:`audit`. Entries are keyed by an
idempotency key: the same key with the same request returns the first
entry; with another request it is a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.contract.errors import Conflict
from accrual.infra.bulk import among, insert_rows
from accrual.infra.db import exact_sum

SYSTEM = "system"
CUSTOMER_KINDS = (settlement.CASH, settlement.PREPAID)
SYSTEM_KINDS = (settlement.REVENUE, settlement.BANK_CLEARING, settlement.PROMOTIONS,
                settlement.BREAKAGE, settlement.CLOUD_RECEIVABLE)
INSTRUMENT_KINDS = (waterfall.CARD, waterfall.STANDARD_VOUCHER, waterfall.DISCOUNT_VOUCHER)
ACTIVE = "active"


@dataclass(frozen=True)
class Posted:
    entry_id: int
    created: bool  # False when the key had already been posted with the same request
    # The postings this call computed and wrote (by postings key); empty when not created.
    postings: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Holdings:
    """What a billing account holds, read under its row lock."""

    balances: dict[str, int]  # cash and prepaid
    instruments: tuple[waterfall.Instrument, ...] = ()  # cards and vouchers not written off


def digest(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def open_accounts(conn: Connection, owner: str, currency: str) -> None:
    kinds = CUSTOMER_KINDS if owner != SYSTEM else SYSTEM_KINDS
    existing = set(conn.execute(select(t.ledger_accounts.c.kind)
                                .where(t.ledger_accounts.c.owner == owner)).scalars())
    missing = [k for k in kinds if k not in existing]
    if missing:
        conn.execute(insert(t.ledger_accounts), [
            {"owner": owner, "kind": k, "currency": currency, "balance_minor": 0} for k in missing])


def open_instrument_account(conn: Connection, instrument_id: str, kind: str,
                            currency: str) -> None:
    """A card or voucher gets a ledger account of its own, named by its id."""
    assert kind in INSTRUMENT_KINDS
    conn.execute(insert(t.ledger_accounts).values(owner=instrument_id, kind=kind,
                                                  currency=currency, balance_minor=0))


def balances(conn: Connection, owner: str, *, lock: bool = False) -> dict[str, int]:
    query = select(t.ledger_accounts.c.kind, t.ledger_accounts.c.balance_minor).where(
        t.ledger_accounts.c.owner == owner).order_by(t.ledger_accounts.c.id)
    if lock and conn.dialect.name == "postgresql":
        # Serialises every movement of one billing account (READ COMMITTED),
        # its cards' and vouchers' included: all of them take this lock first.
        query = query.with_for_update()
    return {kind: int(balance) for kind, balance in conn.execute(query).all()}


def instruments_of(conn: Connection, owners: Collection[str]
                   ) -> dict[str, list[waterfall.Instrument]]:
    """The cards and vouchers of these billing accounts that are not written off, with
    their balances; read them after taking the owners' locks (:func:`balances`)."""
    i, a = t.instruments, t.ledger_accounts
    found: dict[str, list[waterfall.Instrument]] = {owner: [] for owner in owners}
    if not owners:
        return found
    for row in conn.execute(
            select(i.c.account_id, i.c.id, i.c.kind, a.c.balance_minor, i.c.expires_at,
                   i.c.created_at)
            .join(a, a.c.owner == i.c.id)
            .where(among(conn, i.c.account_id, owners), i.c.status == ACTIVE)
            .order_by(i.c.account_id, i.c.expires_at, i.c.id)):
        found[row.account_id].append(waterfall.Instrument(
            row.id, row.kind, int(row.balance_minor), row.expires_at, row.created_at))
    return found


def is_cached(key: str) -> bool:
    # Revenue and the other center accounts are touched by every entry of every
    # account; caching their balances would make one hot row that serialises
    # the whole center. They are summed when read.
    return key not in SYSTEM_KINDS


@dataclass(frozen=True)
class Entry:
    """A journal entry to post for ``owner`` unless ``key`` was posted before.

    ``postings`` by postings key (see :mod:`settlement`), or a function of what the
    owner holds, read under the owner's row lock and kept current through the
    entries before it in the same :func:`post_many`. ``then`` names the entries
    that follow from what it moved (a refund to an expired card brings the card's
    write-off), posted right after it.
    """

    owner: str
    key: str
    request_digest: str
    kind: str
    reference: str | None
    postings: settlement.Postings | Callable[[Holdings], settlement.Postings]
    what: str | None = None  # how a refusal names it; "this <kind>" when None
    then: Callable[[Holdings, settlement.Postings], Sequence[Entry]] | None = None

    def describe(self) -> str:
        return self.what or f"this {self.kind.replace('_', ' ')}"


def post(conn: Connection, *, owner: str, key: str, request_digest: str, kind: str,
         reference: str | None, now: datetime,
         compute: Callable[[Holdings], settlement.Postings],
         with_instruments: bool = False) -> Posted:
    """One entry: :func:`post_many` of one. ``compute`` gets what the owner holds (its
    cards and vouchers only ``with_instruments``) and returns the postings."""
    return post_many(conn, [Entry(owner, key, request_digest, kind, reference, compute)], now,
                     with_instruments=with_instruments)[0]


def post_many(conn: Connection, entries: Sequence[Entry], now: datetime, *,
              with_instruments: bool = False, instruments_of_line: Mapping[str, str] | None = None
              ) -> list[Posted]:
    """Post ``entries`` in order, each once per idempotency key: the same key with the
    same request digest answers the first entry (``created`` False), with another it
    is a conflict (``idempotency_conflict``). The one path by which postings are written.

    Set-based: one read of the keys already posted, one locked read of the owners'
    balances (in id order, so two batches never wait in a cycle), then every entry
    computed against balances kept current in memory and refused before anything is
    written when it passes a bound (``bounds.LedgerLimitExceeded``); the entries, their
    postings and the balance changes are then written in a few multi-row statements.
    ``instruments_of_line`` (instrument id → billing account) names cards and vouchers,
    written off or not, that entries may move besides the active ones. Answers a
    ``Posted`` per entry, in order, with the postings it wrote for it.

    Services move money that can change what an account owes through
    ``services.movements.Movements``, which applies the arrears rule after this.
    """
    if not entries:
        return []
    e = t.journal_entries
    known: dict[str, tuple[int, str]] = {  # key → (entry id, or -1 - slot when new; digest)
        row.idempotency_key: (row.id, row.request_digest) for row in conn.execute(
            select(e.c.id, e.c.idempotency_key, e.c.request_digest)
            .where(among(conn, e.c.idempotency_key, {x.key for x in entries})))}
    books = _Books(conn, {x.owner for x in entries if x.key not in known}, with_instruments)
    books.add_instruments(conn, instruments_of_line or {})
    batch = _Batch(books)
    slots = [batch.add(conn, entry, known) for entry in entries]
    ids = batch.write(conn, now)
    return [Posted(ids[-1 - slot] if slot < 0 else slot, created,
                   batch.computed[-1 - slot] if created else {})
            for slot, created in slots]


class _Books:
    """The locked balances of the accounts a batch moves, kept current as it posts."""

    def __init__(self, conn: Connection, owners: set[str], with_instruments: bool) -> None:
        a = t.ledger_accounts
        # Every movement of a billing account is serialised by these row locks (READ
        # COMMITTED), its cards' and vouchers' included: all of them take it first.
        locked = select(a.c.id, a.c.owner, a.c.kind, a.c.balance_minor, a.c.currency).where(
            among(conn, a.c.owner, owners)).order_by(a.c.id)
        if conn.dialect.name == "postgresql":
            locked = locked.with_for_update()
        self.balances: dict[int, int] = {}  # ledger account id → cached balance
        self.currency: dict[int, str] = {}  # ledger account id → currency
        self.ids: dict[tuple[str, str], int] = {}  # (owner, postings key) → ledger account id
        if owners:
            for row in conn.execute(locked):
                self._know(row.owner, row.kind, row)
            for kind, ledger_id in conn.execute(select(a.c.kind, a.c.id).where(
                    a.c.owner == SYSTEM, a.c.kind.in_(SYSTEM_KINDS))):
                self.ids[(SYSTEM, kind)] = ledger_id
        self.instruments = instruments_of(conn, owners) if with_instruments and owners else {}
        # Cards and vouchers have accounts of their own (owner = the instrument's id),
        # moved only under their billing account's lock taken above.
        self.add_instruments(conn, {i.id: owner for owner, found in self.instruments.items()
                                    for i in found})

    def _know(self, owner: str, key: str, row: Any) -> None:
        self.ids[(owner, key)] = row.id
        self.balances[row.id] = int(row.balance_minor)
        self.currency[row.id] = row.currency

    def add_instruments(self, conn: Connection, holder: Mapping[str, str]) -> None:
        """Also the accounts of these instruments (id → billing account)."""
        a = t.ledger_accounts
        wanted = {n: owner for n, owner in holder.items() if (owner, n) not in self.ids}
        if not wanted:
            return
        for row in conn.execute(select(a.c.id, a.c.owner, a.c.balance_minor, a.c.currency)
                                .where(among(conn, a.c.owner, wanted))):
            self._know(wanted[row.owner], row.owner, row)

    def account(self, conn: Connection, owner: str, key: str) -> int:
        """The ledger account id of a postings key: the owner's cash or prepaid, the
        center's own accounts, or an instrument's account (a key that is neither; read
        now when not known yet, e.g. a card opened in this transaction)."""
        found = self.ids.get((SYSTEM if key in SYSTEM_KINDS else owner, key))
        if found is None:
            self.add_instruments(conn, {key: owner})
            found = self.ids[(owner, key)]
        return found

    def holdings(self, owner: str) -> Holdings:
        balances = {kind: self.balances[self.ids[(owner, kind)]]
                    for kind in CUSTOMER_KINDS if (owner, kind) in self.ids}
        held = tuple(replace(i, balance_minor=self.balances[self.ids[(owner, i.id)]])
                     for i in self.instruments.get(owner, ()))
        return Holdings(balances, held)


class _Batch:
    """The entries of one :func:`post_many`, computed in order and written together."""

    def __init__(self, books: _Books) -> None:
        self.books = books
        self.entries: list[tuple[str, str, str | None, str, str]] = []  # kind, owner, ref, key, digest
        self.postings: list[tuple[int, int, int]] = []  # (slot, ledger account id, amount)
        self.deltas: dict[int, int] = {}  # ledger account id → change of its cached balance
        self.computed: list[settlement.Postings] = []  # the postings of each entry, by slot

    def add(self, conn: Connection, entry: Entry, known: dict[str, tuple[int, str]]
            ) -> tuple[int, bool]:
        """(entry id, or -1 - slot of a new one; created)."""
        seen = known.get(entry.key)
        if seen is not None:
            if seen[1] != entry.request_digest:
                raise Conflict("idempotency_conflict",
                               f"{entry.key!r} was already used for a different request")
            return seen[0], False
        books, owner = self.books, entry.owner
        held = books.holdings(owner)
        postings = dict(entry.postings(held) if callable(entry.postings) else entry.postings)
        ids = {key: books.account(conn, owner, key) for key in postings}
        cached = {key: books.balances[ids[key]] for key in postings if is_cached(key)}
        currency = next((books.currency[ids[key]] for key in cached), "CNY")
        bounds.check_movement(owner, cached, postings, currency, what=entry.describe())
        slot = len(self.entries)
        known[entry.key] = (-1 - slot, entry.request_digest)
        self.entries.append((entry.kind, owner, entry.reference, entry.key,
                             entry.request_digest))
        self.computed.append(postings)
        for key, amount in postings.items():
            self.postings.append((slot, ids[key], amount))
            if key in cached:
                books.balances[ids[key]] += amount
                self.deltas[ids[key]] = self.deltas.get(ids[key], 0) + amount
        if entry.then is not None:
            following = entry.then(held, postings)
            if following:  # rare (write-offs): their keys are looked up one by one
                e = t.journal_entries
                for row in conn.execute(select(e.c.id, e.c.idempotency_key, e.c.request_digest)
                                        .where(e.c.idempotency_key.in_(
                                            [x.key for x in following]))):
                    known.setdefault(row.idempotency_key, (row.id, row.request_digest))
                for follower in following:
                    self.add(conn, follower, known)
        return -1 - slot, True

    def write(self, conn: Connection, now: datetime) -> list[int]:
        """Write the entries, their postings and the cached balances' changes; the
        entries' ids, by slot."""
        ids = _insert_entries(conn, self.entries, now)
        insert_rows(conn, t.postings, ("entry_id", "ledger_account_id", "amount_minor"),
                    ((ids[slot], ledger_id, amount) for slot, ledger_id, amount in self.postings))
        changed = [{"b_id": ledger_id, "b_delta": delta}
                   for ledger_id, delta in sorted(self.deltas.items()) if delta]
        if changed:
            a = t.ledger_accounts
            conn.execute(update(a).where(a.c.id == bindparam("b_id")).values(
                balance_minor=a.c.balance_minor + bindparam("b_delta")), changed)
        return ids


def _insert_entries(conn: Connection, entries: list[tuple[str, str, str | None, str, str]],
                    now: datetime) -> list[int]:
    """Journal entries (kind, account, reference, key, digest) → their ids, in order."""
    if not entries:
        return []
    e = t.journal_entries
    if conn.dialect.name == "postgresql" and len(entries) > 1:
        # Ids drawn first, so that the rows go in by one COPY and keep their order.
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


@dataclass(frozen=True)
class AuditReport:
    entries: int
    unbalanced_entries: int
    balance_mismatches: int

    @property
    def ok(self) -> bool:
        return self.unbalanced_entries == 0 and self.balance_mismatches == 0


def audit(conn: Connection) -> AuditReport:
    """Every entry sums to zero; every cached customer balance equals the sum of its postings."""
    p, a = t.postings, t.ledger_accounts
    entries = conn.execute(select(func.count()).select_from(t.journal_entries)).scalar_one()
    unbalanced = conn.execute(select(func.count()).select_from(
        select(p.c.entry_id).group_by(p.c.entry_id)
        .having(exact_sum(p.c.amount_minor) != 0).subquery())).scalar_one()
    sums = (select(p.c.ledger_account_id, exact_sum(p.c.amount_minor).label("total"))
            .group_by(p.c.ledger_account_id).subquery())
    mismatches = conn.execute(
        select(func.count()).select_from(a.outerjoin(sums, sums.c.ledger_account_id == a.c.id))
        .where(a.c.owner != SYSTEM, a.c.balance_minor != func.coalesce(sums.c.total, 0))
    ).scalar_one()
    return AuditReport(int(entries), int(unbalanced), int(mismatches))
