"""The double-entry ledger: idempotent journal entries, cached balances, audit.

Every movement is one journal entry whose postings sum to zero; balances are
the sums of postings, cached on the ledger account in the same transaction
and checked against the postings by :func:`audit`. Entries are keyed by an
idempotency key: the same key with the same request returns the first
entry; with another request it is a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.contract.errors import Conflict
from accrual.infra.bulk import among
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


def account_ids(conn: Connection, owner: str, keys: Collection[str]) -> dict[str, int]:
    """The ledger account id of each postings key: the owner's cash or prepaid, the
    center's own accounts, or an instrument's account (a key that is neither)."""
    a = t.ledger_accounts
    instruments = [k for k in keys if k not in CUSTOMER_KINDS and k not in SYSTEM_KINDS]
    found: dict[str, int] = {}
    for kind, account_owner, ledger_id in conn.execute(select(a.c.kind, a.c.owner, a.c.id).where(
            ((a.c.owner == owner) & a.c.kind.in_(CUSTOMER_KINDS))
            | ((a.c.owner == SYSTEM) & a.c.kind.in_(SYSTEM_KINDS))
            | a.c.owner.in_(instruments))):
        found[account_owner if account_owner in instruments else kind] = ledger_id
    return found


def is_cached(key: str) -> bool:
    # Revenue and the other center accounts are touched by every entry of every
    # account; caching their balances would make one hot row that serialises
    # the whole center. They are summed when read.
    return key not in SYSTEM_KINDS


def post(conn: Connection, *, owner: str, key: str, request_digest: str, kind: str,
         reference: str | None, now: datetime,
         compute: Callable[[Holdings], settlement.Postings],
         with_instruments: bool = False) -> Posted:
    """Post one entry for ``owner`` unless ``key`` was posted before.

    ``compute`` gets what the owner holds, read under the owner's row lock
    (its cards and vouchers only ``with_instruments``), and returns the postings
    by ledger account (see :mod:`settlement`).
    """
    existing = conn.execute(select(t.journal_entries.c.id, t.journal_entries.c.request_digest)
                            .where(t.journal_entries.c.idempotency_key == key)).first()
    if existing is not None:
        if existing.request_digest != request_digest:
            raise Conflict("idempotency_conflict",
                           f"{key!r} was already used for a different request")
        return Posted(existing.id, False)
    current = balances(conn, owner, lock=True)
    held = tuple(instruments_of(conn, [owner])[owner]) if with_instruments else ()
    postings = compute(Holdings(current, held))
    ids = account_ids(conn, owner, postings)
    check_bounds(conn, owner, kind, postings, ids)
    entry_id = conn.execute(insert(t.journal_entries).values(
        idempotency_key=key, request_digest=request_digest, kind=kind, account_id=owner,
        reference=reference, created_at=now).returning(t.journal_entries.c.id)).scalar_one()
    conn.execute(insert(t.postings), [
        {"entry_id": entry_id, "ledger_account_id": ids[k], "amount_minor": amount}
        for k, amount in postings.items()])
    for k, amount in postings.items():
        if is_cached(k):
            conn.execute(update(t.ledger_accounts).where(t.ledger_accounts.c.id == ids[k])
                         .values(balance_minor=t.ledger_accounts.c.balance_minor + amount))
    return Posted(entry_id, True)


def check_bounds(conn: Connection, owner: str, kind: str, postings: settlement.Postings,
                 ids: dict[str, int]) -> None:
    """Refuse (``bounds.LedgerLimitExceeded``) postings that would pass a bound, before
    anything is written: read the cached balances they move (under the owner's lock)."""
    a = t.ledger_accounts
    cached = {ids[k]: k for k in postings if is_cached(k)}
    found = conn.execute(select(a.c.id, a.c.balance_minor, a.c.currency)
                         .where(a.c.id.in_(list(cached)))).all() if cached else []
    currency = found[0].currency if found else "CNY"
    bounds.check_movement(owner, {cached[row.id]: int(row.balance_minor) for row in found},
                          postings, currency, what=f"this {kind.replace('_', ' ')}")


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
