"""Day close: usage → daily statistics → billing details, in one transaction with the outbox.

Closing is a comparison of what the day's usage says with what was already
billed for it, so closing the same day twice changes nothing, and late usage
for a closed day produces exactly the adjustment detail that is missing.

The steps live beside this module: ``day_close_reads`` (the day's statistics and
what was billed), ``day_close_pricing`` (parts and remembered prices),
``day_close_rows`` and ``day_close_texts`` (the rows, ids and envelopes written, by
hand-rolled fast paths) and ``day_close_writer`` (storing a part while the next is
priced).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from accrual.catalog import PriceBook
from accrual.clock import Clock, site_day
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.rating import plan_details
from accrual.console.services.day_close_pricing import _parts, _Prices
from accrual.console.services.day_close_reads import read_billed, read_statistics
from accrual.console.services.day_close_rows import _Rows
from accrual.console.services.day_close_writer import _Writer
from accrual.contract.errors import ServiceError

log = logging.getLogger(__name__)


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
        charges = adjustments = 0
        with self.engine.begin() as conn:
            self._lock_day(conn, day)
            already = conn.execute(select(t.closed_days.c.day)
                                   .where(t.closed_days.c.day == day)).first() is not None
            statistics, accounts = read_statistics(conn, day, scope)
            billed = read_billed(conn, self.config.site, day, scope)
            prices = _Prices(self.book)
            # Part by part, in workspace order (the order one plan over the whole day gives);
            # on PostgreSQL the writer stores a part while the next one is priced.
            with _Writer(conn) as writer:
                for statistics_part, billed_part in _parts(statistics, billed):
                    planned = plan_details(statistics_part, billed_part,
                                           book=prices,  # type: ignore[arg-type]
                                           currency=self.config.currency,
                                           site_group=self.config.site_group, reason=reason)
                    if not planned:
                        continue
                    part_charges = sum(1 for p in planned if p.kind == "charge")
                    charges += part_charges
                    adjustments += len(planned) - part_charges
                    rows = _Rows(self.config.site, self.config.currency, now, accounts)
                    rows.add(planned)
                    writer.put(rows)
            if not already:
                conn.execute(insert(t.closed_days).values(day=day, closed_at=now))
        log.info("closed %s on %s: %d charges, %d adjustments", day, self.config.site, charges,
                 adjustments)
        return CloseResult(day, charges, adjustments, already)

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
