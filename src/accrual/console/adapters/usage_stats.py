"""Aggregates of stored usage: one query shape for day close, admission and usage views."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, case, func, select

from accrual.catalog import ITEMS
from accrual.catalog.items import DailyRule
from accrual.catalog.rules import daily_quantity
from accrual.console.adapters import tables as t

MAX_ITEMS = sorted(code for code, item in ITEMS.items() if item.rule is DailyRule.MAX)


def daily_quantities(conn: Connection, days: Iterable[date], workspaces: Iterable[str] | None = None
                     ) -> dict[tuple[str, date, str, int], Decimal]:
    """(workspace, day, item, tier) → the day's quantity by the item's daily rule
    (sum of increments, or max of cumulative values), for any plan."""
    u = t.usage_records
    quantity = case((u.c.item.in_(MAX_ITEMS), func.max(u.c.quantity)), else_=func.sum(u.c.quantity))
    query = (select(u.c.workspace_id, u.c.day, u.c.item, u.c.retention_days, quantity.label("q"),
                    func.sum(u.c.companion).label("companion"))
             .where(u.c.day.in_(list(days)))
             .group_by(u.c.workspace_id, u.c.day, u.c.item, u.c.retention_days))
    if workspaces is not None:
        query = query.where(u.c.workspace_id.in_(list(workspaces)))
    return {(r.workspace_id, r.day, r.item, r.retention_days):
            daily_quantity(r.item, Decimal(r.q), r.companion or 0) for r in conn.execute(query)}


def per_item(quantities: dict[tuple[str, date, str, int], Decimal]
             ) -> dict[tuple[str, date, str], Decimal]:
    """Fold retention tiers together: (workspace, day, item) → quantity."""
    folded: dict[tuple[str, date, str], Decimal] = {}
    for (workspace_id, day, item, _tier), quantity in quantities.items():
        key = (workspace_id, day, item)
        folded[key] = folded.get(key, Decimal(0)) + quantity
    return folded
