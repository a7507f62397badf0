"""What a workspace's members see of its money and usage: its billing details, the
consumption analysis and the usage series, read from the console's tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from accrual.console.adapters import tables as t
from accrual.console.adapters.usage_stats import daily_quantities
from accrual.money import from_minor


@dataclass(frozen=True, slots=True)
class DetailLine:
    """A billing detail as stored under its workspace."""

    id: str
    day: date
    item: str
    retention_days: int
    kind: str  # charge | adjustment
    revision: int
    quantity: str  # decimal texts, as sent in the detail
    unit_size: str
    unit_price: str
    amount: Decimal
    currency: str
    price_book_version: str
    billing_account_id: str | None
    adjusts: str | None
    reason: str | None
    created_at: datetime


def billing_details(engine: Engine, workspace_id: str, start: date, end: date) -> list[DetailLine]:
    d = t.billing_details
    with engine.connect() as conn:
        rows = conn.execute(
            select(d).where(d.c.workspace_id == workspace_id, d.c.day >= start, d.c.day <= end)
            .order_by(d.c.day, d.c.item, d.c.retention_days, d.c.revision)).all()
    return [
        DetailLine(r.id, r.day, r.item, r.retention_days, r.kind, r.revision, r.quantity,
                   r.unit_size, r.unit_price, from_minor(r.amount_minor, r.currency), r.currency,
                   r.price_book_version, r.billing_account_id, r.adjusts, r.reason, r.created_at)
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class ItemAmount:
    item: str
    amount: Decimal
    share: Decimal  # percent of the total, 2 places (0 when nothing was billed)


@dataclass(frozen=True, slots=True)
class DayAmount:
    day: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Consumption:
    workspace_id: str
    start: date
    end: date
    currency: str
    total: Decimal
    items: tuple[ItemAmount, ...]  # largest first
    daily: tuple[DayAmount, ...]



def consumption(engine: Engine, workspace_id: str, start: date, end: date, currency: str
                ) -> Consumption:
    """Billed amounts over a range: totals per item and a daily series (for charts)."""
    d = t.billing_details
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.day, d.c.item, func.sum(d.c.amount_minor).label("amount"))
            .where(d.c.workspace_id == workspace_id, d.c.day >= start, d.c.day <= end)
            .group_by(d.c.day, d.c.item).order_by(d.c.day, d.c.item)).all()
    by_item: dict[str, int] = {}
    by_day: dict[date, int] = {}
    for row in rows:
        by_item[row.item] = by_item.get(row.item, 0) + int(row.amount)
        by_day[row.day] = by_day.get(row.day, 0) + int(row.amount)
    total = sum(by_item.values())
    return Consumption(
        workspace_id, start, end, currency, from_minor(total, currency),
        tuple(ItemAmount(item, from_minor(amount, currency), _share(amount, total))
              for item, amount in sorted(by_item.items(), key=lambda kv: -kv[1])),
        tuple(DayAmount(day, from_minor(amount, currency))
              for day, amount in sorted(by_day.items())))


def _share(amount: int, total: int) -> Decimal:
    # As the analysis always showed it: the float percentage, printed to 2 places.
    return Decimal(f"{(amount * 100 / total):.2f}") if total else Decimal("0.00")


@dataclass(frozen=True, slots=True)
class UsagePoint:
    day: date
    quantity: Decimal
    complete: bool  # False for today so far


@dataclass(frozen=True, slots=True)
class UsageSeries:
    item: str
    retention_days: int
    days: tuple[UsagePoint, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    workspace_id: str
    start: date
    end: date
    today: date
    items: tuple[UsageSeries, ...]


def usage(engine: Engine, workspace_id: str, start: date, end: date, today: date) -> Usage:
    """Daily quantities per item and tier (any plan), with today's so far marked as such."""
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    with engine.connect() as conn:
        quantities = daily_quantities(conn, days, [workspace_id])
    series: dict[tuple[str, int], list[UsagePoint]] = {}
    for (_, day, item, tier), quantity in sorted(quantities.items(),
                                                 key=lambda kv: (kv[0][2], kv[0][3], kv[0][1])):
        series.setdefault((item, tier), []).append(UsagePoint(day, quantity, day < today))
    return Usage(workspace_id, start, end, today,
                 tuple(UsageSeries(item, tier, tuple(points))
                       for (item, tier), points in series.items()))
