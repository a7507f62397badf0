"""The double-entry ledger: idempotent journal entries, cached balances, audit.

Every movement is one journal entry whose postings sum to zero; balances are
the sums of postings, cached on the ledger account in the same transaction
and checked against the postings by :func:`audit`. Entries are keyed by an
idempotency key: the same key with the same request returns the first
entry; with another request it is a conflict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import settlement
from accrual.contract.errors import Conflict

SYSTEM = "system"
CUSTOMER_KINDS = (settlement.CASH, settlement.PREPAID)
SYSTEM_KINDS = (settlement.REVENUE, settlement.BANK_CLEARING)


@dataclass(frozen=True)
class Posted:
    entry_id: int
    created: bool  # False when the key had already been posted with the same request


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


def balances(conn: Connection, owner: str, *, lock: bool = False) -> dict[str, int]:
    query = select(t.ledger_accounts.c.kind, t.ledger_accounts.c.balance_minor).where(
        t.ledger_accounts.c.owner == owner).order_by(t.ledger_accounts.c.id)
    if lock and conn.dialect.name == "postgresql":
        # Serialises every movement of one billing account (READ COMMITTED).
        query = query.with_for_update()
    return {kind: int(balance) for kind, balance in conn.execute(query).all()}


def post(conn: Connection, *, owner: str, key: str, request_digest: str, kind: str,
         reference: str | None, now: datetime,
         compute: Callable[[dict[str, int]], settlement.Postings]) -> Posted:
    """Post one entry for ``owner`` unless ``key`` was posted before.

    ``compute`` gets the owner's balances, read under a row lock, and returns
    the postings by ledger-account kind.
    """
    existing = conn.execute(select(t.journal_entries.c.id, t.journal_entries.c.request_digest)
                            .where(t.journal_entries.c.idempotency_key == key)).first()
    if existing is not None:
        if existing.request_digest != request_digest:
            raise Conflict("idempotency_conflict",
                           f"{key!r} was already used for a different request")
        return Posted(existing.id, False)
    current = balances(conn, owner, lock=True)
    postings = compute(current)
    entry_id = conn.execute(insert(t.journal_entries).values(
        idempotency_key=key, request_digest=request_digest, kind=kind, account_id=owner,
        reference=reference, created_at=now).returning(t.journal_entries.c.id)).scalar_one()
    ids = dict(conn.execute(
        select(t.ledger_accounts.c.kind, t.ledger_accounts.c.id).where(
            ((t.ledger_accounts.c.owner == owner) & t.ledger_accounts.c.kind.in_(CUSTOMER_KINDS))
            | ((t.ledger_accounts.c.owner == SYSTEM) & t.ledger_accounts.c.kind.in_(SYSTEM_KINDS))
        )).all())
    conn.execute(insert(t.postings), [
        {"entry_id": entry_id, "ledger_account_id": ids[k], "amount_minor": amount}
        for k, amount in postings.items()])
    for k, amount in postings.items():
        if k in SYSTEM_KINDS:
            # Revenue and clearing are touched by every entry of every
            # account; caching their balances would make one hot row that
            # serialises the whole center. They are summed when read.
            continue
        conn.execute(update(t.ledger_accounts).where(t.ledger_accounts.c.id == ids[k])
                     .values(balance_minor=t.ledger_accounts.c.balance_minor + amount))
    return Posted(entry_id, True)


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
        .having(func.sum(p.c.amount_minor) != 0).subquery())).scalar_one()
    sums = (select(p.c.ledger_account_id, func.sum(p.c.amount_minor).label("total"))
            .group_by(p.c.ledger_account_id).subquery())
    mismatches = conn.execute(
        select(func.count()).select_from(a.outerjoin(sums, sums.c.ledger_account_id == a.c.id))
        .where(a.c.owner != SYSTEM, a.c.balance_minor != func.coalesce(sums.c.total, 0))
    ).scalar_one()
    return AuditReport(int(entries), int(unbalanced), int(mismatches))
