"""A day's usage as admission, quotas and usage views read it: the running totals that
ingestion keeps (``usage_day_totals``), never a scan of the records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, select

from accrual.catalog.rules import daily_quantity
from accrual.console.adapters import tables as t
from accrual.infra.bulk import among


def daily_quantities(conn: Connection, days: Iterable[date], workspaces: Iterable[str] | None = None
                     ) -> dict[tuple[str, date, str, int], Decimal]:
    """(workspace, day, item, tier) → the day's quantity by the item's daily rule
    (sum of increments, or max of cumulative values) and post-rules, for any plan."""
    d = t.usage_day_totals
    query = select(d.c.workspace_id, d.c.day, d.c.item, d.c.retention_days, d.c.quantity,
                   d.c.companion).where(d.c.day.in_(list(days)))
    if workspaces is not None:
        query = query.where(among(conn, d.c.workspace_id, list(workspaces)))
    return {(r.workspace_id, r.day, r.item, r.retention_days):
            daily_quantity(r.item, r.quantity, r.companion) for r in conn.execute(query)}


def per_item(quantities: dict[tuple[str, date, str, int], Decimal]
             ) -> dict[tuple[str, date, str], Decimal]:
    """Fold retention tiers together: (workspace, day, item) → quantity."""
    folded: dict[tuple[str, date, str], Decimal] = {}
    for (workspace_id, day, item, _tier), quantity in quantities.items():
        key = (workspace_id, day, item)
        folded[key] = folded.get(key, Decimal(0)) + quantity
    return folded
