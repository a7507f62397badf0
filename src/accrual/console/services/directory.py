"""The operator's view of the site's tenants: workspaces with their owner, plan, state
and billing account, searched by name, id or owner email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select

from accrual.console.adapters import tables as t

MAX_ROWS = 1000  # a page of search results, not an export


@dataclass(frozen=True, slots=True)
class TenantRow:
    workspace_id: str
    name: str
    plan: str
    status: str
    lock_state: str | None
    owner_email: str | None
    billing_account_id: str | None
    created_at: datetime


def tenants(engine: Engine, search: str = "", limit: int = MAX_ROWS) -> tuple[list[TenantRow], int]:
    """Workspaces whose name, id or owner's email contains ``search`` (all when empty),
    newest first, at most ``limit``; and how many accounts the site has."""
    w, m, a = t.workspaces, t.members, t.accounts
    query = (select(w.c.id, w.c.name, w.c.plan, w.c.status, w.c.lock_state,
                    w.c.billing_account_id, w.c.created_at, a.c.email)
             .outerjoin(m, (m.c.workspace_id == w.c.id) & (m.c.role == "owner"))
             .outerjoin(a, a.c.id == m.c.account_id)
             .order_by(w.c.created_at.desc(), w.c.id).limit(min(limit, MAX_ROWS)))
    needle = search.strip().lower()
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(func.lower(w.c.name).like(pattern, escape="\\"),
                                w.c.id.like(pattern, escape="\\"),
                                a.c.email.like(pattern, escape="\\")))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        accounts = conn.execute(select(func.count()).select_from(a)).scalar_one()
    return [TenantRow(r.id, r.name, r.plan, r.status, r.lock_state, r.email,
                      r.billing_account_id, r.created_at) for r in rows], int(accounts)
