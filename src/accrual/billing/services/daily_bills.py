"""The daily bill: one account's charges of a day, one line per workspace, item and tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from sqlalchemy import Engine, select

from accrual.billing.adapters import tables as t

# Quantities are summed exactly: wide enough for any stored quantity, and an inexact
# result raises instead of rounding silently.
_QUANTITIES = Context(prec=120, traps=[Inexact, InvalidOperation])


@dataclass(frozen=True)
class DailyLine:
    workspace_id: str
    site: str
    item: str
    retention_days: int
    quantity: Decimal  # summed over the details (charges and adjustments)
    unit_size: str  # as the console priced it
    unit_price: str  # the newest revision's price, as the console priced it
    amount_minor: int
    details: int


@dataclass(frozen=True)
class DailyBill:
    account_id: str
    day: date
    currency: str
    lines: tuple[DailyLine, ...]
    total_minor: int


def daily_bill(engine: Engine, account_id: str, day: date, currency: str) -> DailyBill:
    """The day's lines per workspace, item and tier; adjustments for the day are included."""
    c = t.charges
    with engine.connect() as conn:
        rows = conn.execute(select(c).where(c.c.account_id == account_id, c.c.day == day)
                            .order_by(c.c.workspace_id, c.c.item, c.c.retention_days,
                                      c.c.revision)).all()
    grouped: dict[tuple[str, str, int], list[Any]] = {}  # charge rows
    lines: list[DailyLine] = []
    with localcontext(_QUANTITIES):
        for r in rows:
            group = grouped.setdefault((r.workspace_id, r.item, r.retention_days), [])
            group.append(r)
        for (workspace_id, item, tier), group_rows in grouped.items():
            first, newest = group_rows[0], group_rows[-1]
            lines.append(DailyLine(
                workspace_id=workspace_id, site=first.site, item=item,
                retention_days=tier,
                quantity=sum((Decimal(r.quantity) for r in group_rows),
                             Decimal(0)),
                unit_size=first.unit_size,
                unit_price=newest.unit_price,
                amount_minor=sum(r.amount_minor for r in group_rows),
                details=len(group_rows)))
    return DailyBill(account_id=account_id, day=day, currency=currency, lines=tuple(lines),
                     total_minor=sum(r.amount_minor for r in rows))
