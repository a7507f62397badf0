"""Re-rating: price closed days again (after a price-book correction), emitting only the
differences as adjustment details, with an audit record of who, when and why."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, insert, select

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.services.day_close import DayClose
from accrual.contract.errors import Invalid
from accrual.money import from_minor

MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class RerateRecord:
    """The audit record of one re-rate: who, why, what it changed."""

    id: int
    actor: str
    reason: str
    first_day: date
    last_day: date
    days: int  # closed days priced again
    adjustments: int  # details it produced
    amount: Decimal  # their sum, in the site's currency
    price_book: str  # the price book's newest version when it ran
    started_at: datetime
    finished_at: datetime


class Rerates:
    def __init__(self, engine: Engine, clock: Clock, day_close: DayClose, currency: str) -> None:
        self.engine = engine
        self.clock = clock
        self.day_close = day_close
        self.currency = currency

    def run(self, first: date, last: date, *, reason: str, actor: str,
            progress: Callable[[date, int], None] | None = None) -> RerateRecord:
        reason = reason.strip() if isinstance(reason, str) else ""
        if not 3 <= len(reason) <= 500:
            raise Invalid("reason_required", "say why (3 to 500 characters): it is audited")
        if first > last:
            raise Invalid("invalid_range", "'from' must not be after 'to'")
        if (last - first).days >= MAX_DAYS:
            raise Invalid("invalid_range", f"re-rate at most {MAX_DAYS} days at a time")
        started = self.clock.now()
        with self.engine.connect() as conn:
            days = list(conn.execute(select(t.closed_days.c.day).where(
                t.closed_days.c.day >= first, t.closed_days.c.day <= last)
                .order_by(t.closed_days.c.day)).scalars())
        tag = f"re-rate: {reason}"[:200]
        adjustments = 0
        for day in days:
            result = self.day_close.close_day(day, reason=tag)
            adjustments += result.adjustments + result.charges
            if progress is not None:
                progress(day, result.adjustments + result.charges)
        d = t.billing_details
        with self.engine.begin() as conn:
            amount = conn.execute(select(func.coalesce(func.sum(d.c.amount_minor), 0)).where(
                d.c.reason == tag, d.c.created_at >= started, d.c.day >= first,
                d.c.day <= last)).scalar_one()
            versions = self.day_close.book.versions()
            record = {"actor": actor, "reason": reason, "first_day": first, "last_day": last,
                      "days": len(days), "adjustments": adjustments, "amount_minor": int(amount),
                      "price_book": versions[-1].isoformat() if versions else "",
                      "started_at": started, "finished_at": self.clock.now()}
            rerate_id = conn.execute(insert(t.rerates).values(**record)
                                     .returning(t.rerates.c.id)).scalar_one()
        return self._record({"id": rerate_id, **record})

    def history(self, limit: int = 100) -> list[RerateRecord]:
        """The re-rates, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.rerates).order_by(t.rerates.c.id.desc()).limit(limit))
            return [self._record(dict(row._mapping)) for row in rows]

    def _record(self, row: Mapping[str, Any]) -> RerateRecord:
        return RerateRecord(
            id=row["id"], actor=row["actor"], reason=row["reason"], first_day=row["first_day"],
            last_day=row["last_day"], days=row["days"], adjustments=row["adjustments"],
            amount=from_minor(int(row["amount_minor"]), self.currency),
            price_book=row["price_book"], started_at=row["started_at"],
            finished_at=row["finished_at"])
