"""Read models of the console: billing details as a workspace member sees them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select

from accrual.console.adapters import tables as t
from accrual.money import format_minor


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
