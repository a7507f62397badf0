"""Day close: usage → daily statistics → billing details, in one transaction with the outbox.

Closing is a comparison of what the day's usage says with what was already
billed for it, so closing the same day twice changes nothing, and late usage
for a closed day produces exactly the adjustment detail that is missing.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine, case, delete, func, insert, or_, select, text, update

from accrual.catalog import ITEMS, PriceBook
from accrual.catalog.items import DailyRule
from accrual.clock import Clock, site_day
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.contract.errors import ServiceError
from accrual.console.domain.rating import Billed, PlannedDetail, StatKey, plan_details
from accrual.contract.messages import BILLING_DETAIL, BillingDetail, Envelope, detail_id
from accrual.infra.outbox import enqueue
from accrual.money import format_decimal, format_minor

log = logging.getLogger(__name__)

_MAX_ITEMS = sorted(code for code, item in ITEMS.items() if item.rule is DailyRule.MAX)


@dataclass(frozen=True)
class CloseResult:
    day: date
    charges: int
    adjustments: int
    already_closed: bool


class DayClose:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, book: PriceBook) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.book = book

    def last_closable_day(self, now: datetime | None = None) -> date:
        """The newest day whose end plus the grace has passed."""
        now = now or self.clock.now()
        return site_day(now - self.config.day_close_grace, self.config.zone) - timedelta(days=1)

    def close_day(self, day: date, *, workspaces: Iterable[str] | None = None,
                  reason: str = "late usage") -> CloseResult:
        now = self.clock.now()
        if day >= site_day(now, self.config.zone):
            raise ServiceError("day_not_over",
                               f"{day.isoformat()} has not ended yet on site {self.config.site}", 422)
        if day < site_day(now - self.config.late_horizon, self.config.zone):
            raise ServiceError("day_beyond_horizon",
                               f"{day.isoformat()} is older than the late-data horizon", 422)
        scope = None if workspaces is None else sorted(set(workspaces))
        with self.engine.begin() as conn:
            self._lock_day(conn, day)
            already = conn.execute(select(t.closed_days.c.day)
                                   .where(t.closed_days.c.day == day)).first() is not None
            statistics, accounts = self._statistics(conn, day, scope)
            billed = self._billed(conn, day, scope)
            planned = plan_details(statistics, billed, book=self.book,
                                   currency=self.config.currency,
                                   site_group=self.config.site_group, reason=reason)
            self._store(conn, planned, accounts, now)
            if not already:
                conn.execute(insert(t.closed_days).values(day=day, closed_at=now))
        charges = sum(1 for p in planned if p.kind == "charge")
        log.info("closed %s on %s: %d charges, %d adjustments", day, self.config.site, charges,
                 len(planned) - charges)
        return CloseResult(day, charges, len(planned) - charges, already)

    def close_due_days(self) -> list[CloseResult]:
        """What the scheduler runs: every day up to the last closable one, then late usage."""
        now = self.clock.now()
        target = self.last_closable_day(now)
        earliest = site_day(now - self.config.late_horizon, self.config.zone) + timedelta(days=1)
        with self.engine.connect() as conn:
            last_closed = conn.execute(select(func.max(t.closed_days.c.day))).scalar()
            first_usage = conn.execute(select(func.min(t.usage_records.c.day))
                                       .where(t.usage_records.c.day >= earliest)).scalar()
        start = last_closed + timedelta(days=1) if last_closed else (first_usage or target)
        start = max(start, earliest)
        results = []
        day = start
        while day <= target:
            results.append(self.close_day(day))
            day += timedelta(days=1)
        results.extend(self.settle_late_usage())
        return results

    def settle_late_usage(self) -> list[CloseResult]:
        """Turn usage that arrived for closed days into adjustment details."""
        with self.engine.connect() as conn:
            pending = conn.execute(select(t.late_days.c.workspace_id, t.late_days.c.day)).all()
        by_day: dict[date, list[str]] = {}
        for workspace_id, day in pending:
            by_day.setdefault(day, []).append(workspace_id)
        results = []
        horizon = site_day(self.clock.now() - self.config.late_horizon, self.config.zone)
        for day, workspace_ids in sorted(by_day.items()):
            if day >= horizon:
                results.append(self.close_day(day, workspaces=workspace_ids))
            with self.engine.begin() as conn:
                conn.execute(delete(t.late_days).where(t.late_days.c.day == day,
                                                       t.late_days.c.workspace_id.in_(workspace_ids)))
        return results

    # -- steps ------------------------------------------------------------

    def _lock_day(self, conn: Connection, day: date) -> None:
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(f"close-day/{self.config.site}/{day.isoformat()}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE).

    def _statistics(self, conn: Connection, day: date, scope: list[str] | None
                    ) -> tuple[dict[StatKey, Decimal], dict[str, str | None]]:
        u, w = t.usage_records, t.workspaces
        is_max = u.c.item.in_(_MAX_ITEMS)
        quantity = case((is_max, func.max(u.c.quantity)), else_=func.sum(u.c.quantity))
        query = (select(u.c.workspace_id, u.c.item, u.c.retention_days, quantity.label("q"),
                        w.c.billing_account_id)
                 .join(w, w.c.id == u.c.workspace_id)
                 .where(u.c.day == day, w.c.plan == "commercial",
                        # usage from before an upgrade stays free
                        or_(w.c.commercial_since.is_(None),
                            u.c.occurred_at >= w.c.commercial_since))
                 .group_by(u.c.workspace_id, u.c.item, u.c.retention_days, w.c.billing_account_id))
        if scope is not None:
            query = query.where(u.c.workspace_id.in_(scope))
        statistics: dict[StatKey, Decimal] = {}
        accounts: dict[str, str | None] = {}
        for row in conn.execute(query):
            statistics[StatKey(row.workspace_id, day, row.item, row.retention_days)] = Decimal(row.q)
            accounts[row.workspace_id] = row.billing_account_id
        return statistics, accounts

    def _billed(self, conn: Connection, day: date, scope: list[str] | None) -> dict[StatKey, Billed]:
        s = t.daily_statistics
        query = select(s).where(s.c.day == day)
        if scope is not None:
            query = query.where(s.c.workspace_id.in_(scope))
        billed = {}
        for row in conn.execute(query):
            key = StatKey(row.workspace_id, day, row.item, row.retention_days)
            billed[key] = Billed(Decimal(row.quantity), row.amount_minor, row.revision,
                                 detail_id(self.config.site, row.workspace_id, day, row.item,
                                           row.retention_days, row.revision))
        return billed

    def _store(self, conn: Connection, planned: list[PlannedDetail],
               accounts: dict[str, str | None], now: datetime) -> None:
        if not planned:
            return
        site, currency = self.config.site, self.config.currency
        details, envelopes, new_stats, changed_stats = [], [], [], []
        for p in planned:
            key = p.key
            did = detail_id(site, key.workspace_id, key.day, key.item, key.retention_days,
                            p.revision)
            account = accounts.get(key.workspace_id)
            detail = BillingDetail(
                id=did, site=site, workspace_id=key.workspace_id, billing_account_id=account,
                day=key.day, item=key.item, retention_days=key.retention_days,
                quantity=format_decimal(p.quantity), unit_size=format_decimal(p.unit_size),
                unit_price=format_decimal(p.unit_price),
                amount=format_minor(p.amount_minor, currency), currency=currency,
                price_book_version=p.price_book_version, kind=p.kind,  # type: ignore[arg-type]
                revision=p.revision, adjusts=p.adjusts, reason=p.reason, created_at=now)
            details.append({
                "id": did, "workspace_id": key.workspace_id, "billing_account_id": account,
                "day": key.day, "item": key.item, "retention_days": key.retention_days,
                "revision": p.revision, "kind": p.kind, "quantity": detail.quantity,
                "unit_size": detail.unit_size, "unit_price": detail.unit_price,
                "amount_minor": p.amount_minor, "currency": currency,
                "price_book_version": p.price_book_version, "adjusts": p.adjusts,
                "reason": p.reason, "created_at": now})
            envelopes.append(Envelope(id=did, type=BILLING_DETAIL, aggregate_id=key.workspace_id,
                                      occurred_at=now, payload=detail.model_dump(mode="json")))
            stat = {"workspace_id": key.workspace_id, "day": key.day, "item": key.item,
                    "retention_days": key.retention_days,
                    "quantity": format_decimal(p.total_quantity),
                    "amount_minor": p.total_amount_minor, "revision": p.revision,
                    "updated_at": now}
            (new_stats if p.kind == "charge" else changed_stats).append(stat)
        conn.execute(insert(t.billing_details), details)
        if new_stats:
            conn.execute(insert(t.daily_statistics), new_stats)
        s = t.daily_statistics
        for stat in changed_stats:
            conn.execute(update(s).where(
                s.c.workspace_id == stat["workspace_id"], s.c.day == stat["day"],
                s.c.item == stat["item"], s.c.retention_days == stat["retention_days"],
            ).values(quantity=stat["quantity"], amount_minor=stat["amount_minor"],
                     revision=stat["revision"], updated_at=now))
        enqueue(conn, t.outbox, envelopes, now)


