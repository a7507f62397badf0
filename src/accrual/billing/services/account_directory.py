"""The operator's view of the billing accounts: searched by username or email, each with
what it holds and owes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select

from accrual.billing.adapters import tables as t
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.wallet import Overview, Wallet

MAX_ROWS = 200  # each row reads the account's balances


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    username: str
    email: str
    status: str
    certified: bool
    created_at: datetime
    workspaces: int  # paid for today
    balances: Overview


def accounts(engine: Engine, billing: BillingAccounts, wallet: Wallet, search: str = "",
             limit: int = MAX_ROWS) -> tuple[list[AccountRow], int]:
    """Active accounts whose username or email contains ``search`` (all when empty), newest
    first, at most ``limit``, with their balances; and how many active accounts there are."""
    a = t.accounts
    query = (select(a.c.id, a.c.username, a.c.email, a.c.status, a.c.certified_at,
                    a.c.created_at).where(a.c.status == "active")
             .order_by(a.c.created_at.desc(), a.c.id).limit(min(limit, MAX_ROWS)))
    needle = search.strip().lower()
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(a.c.username.like(pattern, escape="\\"),
                                func.lower(a.c.email).like(pattern, escape="\\")))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        total = conn.execute(select(func.count()).select_from(a)
                             .where(a.c.status == "active")).scalar_one()
    return [AccountRow(r.id, r.username, r.email, r.status, r.certified_at is not None,
                       r.created_at, len(billing.workspaces_of(r.id)), wallet.overview(r.id))
            for r in rows], int(total)
