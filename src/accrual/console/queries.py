"""Read models of the console: billing details, consumption and usage as members see them."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine, func, select

from accrual.console.adapters import tables as t
from accrual.console.adapters.usage_stats import daily_quantities
from accrual.money import format_decimal, format_minor


def billing_details(engine: Engine, workspace_id: str, start: date, end: date) -> list[dict[str, object]]:
    d = t.billing_details
    with engine.connect() as conn:
        rows = conn.execute(
            select(d).where(d.c.workspace_id == workspace_id, d.c.day >= start, d.c.day <= end)
            .order_by(d.c.day, d.c.item, d.c.retention_days, d.c.revision)).all()
    return [
        {"id": r.id, "day": r.day.isoformat(), "item": r.item, "retention_days": r.retention_days,
         "kind": r.kind, "revision": r.revision, "quantity": r.quantity, "unit_size": r.unit_size,
         "unit_price": r.unit_price, "amount": format_minor(r.amount_minor, r.currency),
         "currency": r.currency, "price_book_version": r.price_book_version,
         "billing_account_id": r.billing_account_id, "adjusts": r.adjusts, "reason": r.reason,
         "created_at": r.created_at.isoformat()}
        for r in rows
    ]


# -- periods of the reference's filters ------------------------------------------

PERIODS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "this_year")


def period_bounds(period: str, today: date) -> tuple[date, date]:
    """[first, last] day of a named period, weeks starting on Monday."""
    if period == "today":
        return today, today
    if period == "yesterday":
        day = today - timedelta(days=1)
        return day, day
    if period == "this_week":
        return today - timedelta(days=today.weekday()), today
    if period == "last_week":
        end = today - timedelta(days=today.weekday() + 1)
        return end - timedelta(days=6), end
    if period == "this_month":
        return today.replace(day=1), today
    if period == "last_month":
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    if period == "this_year":
        return today.replace(month=1, day=1), today
    raise ValueError(period)


def consumption(engine: Engine, workspace_id: str, start: date, end: date, currency: str
                ) -> dict[str, object]:
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
    return {
        "workspace_id": workspace_id, "from": start.isoformat(), "to": end.isoformat(),
        "currency": currency, "total": format_minor(total, currency),
        "items": [{"item": item, "amount": format_minor(amount, currency),
                   "share": f"{(amount * 100 / total):.2f}" if total else "0.00"}
                  for item, amount in sorted(by_item.items(), key=lambda kv: -kv[1])],
        "daily": [{"day": day.isoformat(), "amount": format_minor(amount, currency)}
                  for day, amount in sorted(by_day.items())],
    }


def usage(engine: Engine, workspace_id: str, start: date, end: date, today: date
          ) -> dict[str, object]:
    """Daily quantities per item and tier (any plan), with today's so far marked as such."""
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    with engine.connect() as conn:
        quantities = daily_quantities(conn, days, [workspace_id])
    series: dict[tuple[str, int], list[dict[str, object]]] = {}
    for (_, day, item, tier), quantity in sorted(quantities.items(),
                                                 key=lambda kv: (kv[0][2], kv[0][3], kv[0][1])):
        series.setdefault((item, tier), []).append({
            "day": day.isoformat(), "quantity": format_decimal(quantity),
            "complete": day < today})
    return {"workspace_id": workspace_id, "from": start.isoformat(), "to": end.isoformat(),
            "today": today.isoformat(),
            "items": [{"item": item, "retention_days": tier, "days": points}
                      for (item, tier), points in series.items()]}
