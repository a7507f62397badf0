"""Read models of the billing center: daily bills."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any

from sqlalchemy import Engine, select

from accrual.billing.adapters import tables as t
from accrual.money import format_decimal, format_minor


def daily_bill(engine: Engine, account_id: str, day: date, currency: str) -> dict[str, object]:
    """The day's lines per workspace, item and tier; adjustments for the day are included."""
    c = t.charges
    with engine.connect() as conn:
        rows = conn.execute(select(c).where(c.c.account_id == account_id, c.c.day == day)
                            .order_by(c.c.workspace_id, c.c.item, c.c.retention_days,
                                      c.c.revision)).all()
    lines: dict[tuple[str, str, int], dict[str, object]] = {}
    total = 0
    with localcontext(_QUANTITIES):
        _add_lines(rows, lines)
        for line in lines.values():
            line["quantity"] = format_decimal(line["quantity"])  # type: ignore[arg-type]
    for r in rows:
        total += r.amount_minor
    out = []
    for line in lines.values():
        line["amount"] = format_minor(line.pop("amount_minor"), currency)  # type: ignore[arg-type]
        out.append(line)
    return {"account_id": account_id, "date": day.isoformat(), "currency": currency,
            "lines": out, "total": format_minor(total, currency)}


# Quantities are summed exactly: wide enough for any stored quantity, and an inexact
# result raises instead of rounding silently.
_QUANTITIES = Context(prec=120, traps=[Inexact, InvalidOperation])


def _add_lines(rows: Sequence[Any], lines: dict[tuple[str, str, int], dict[str, object]]) -> None:
    for r in rows:
        key = (r.workspace_id, r.item, r.retention_days)
        line = lines.setdefault(key, {
            "workspace_id": r.workspace_id, "site": r.site, "item": r.item,
            "retention_days": r.retention_days, "quantity": Decimal(0), "unit_size": r.unit_size,
            "unit_price": r.unit_price, "amount_minor": 0, "details": 0})
        line["quantity"] = line["quantity"] + Decimal(r.quantity)  # type: ignore[operator]
        line["amount_minor"] = line["amount_minor"] + r.amount_minor
        line["unit_price"] = r.unit_price  # the newest revision's price
        line["details"] = line["details"] + 1  # type: ignore[operator]
