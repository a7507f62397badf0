"""Day close: usage → daily statistics → billing details, in one transaction with the outbox.

Closing is a comparison of what the day's usage says with what was already
billed for it, so closing the same day twice changes nothing, and late usage
for a closed day produces exactly the adjustment detail that is missing.

The steps live beside this module: ``statistics`` (the day's statistics and what was
billed), ``rows`` (the rows and envelopes written) and ``writer`` (storing a part while
the next is priced); pricing and cutting the day into parts are the domain's
(``console.domain.rating``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from accrual.catalog import PriceBook
from accrual.clock import Clock, site_day
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.rating import RememberedPrices, plan_details, workspace_parts
from accrual.console.services.day_close.rows import CloseRows
from accrual.console.services.day_close.statistics import (
    read_billed,
    read_statistics,
    workspaces_of,
)
from accrual.console.services.day_close.writer import RowWriter
from accrual.contract.errors import Invalid
from accrual.infra.bulk import among
from accrual.infra.jobs import Job, backoff, describe

log = logging.getLogger(__name__)


# Isolation (a close that fails is done again in parts, each in a SAVEPOINT, halving the
# part that fails): it stops once this many workspaces have failed on their own; what
# is left unresolved then waits as failing too (in late_days), so that one bad day
# costs at most about this many × log2(workspaces) small closes.
ISOLATE_FAILING_MAX = 64
# A failing workspace's day is tried again after about 1, 2, 4 … minutes, at most
# an hour apart (late_days keeps it; the job registry keeps when).
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class CloseResult:
    day: date
    charges: int
    adjustments: int
    already_closed: bool
    # workspace → its error, for the workspaces that could not be closed this time (the
    # day is closed for every other one; these wait in late_days and are tried again).
    failed: dict[str, str] = field(default_factory=dict)


class DayClose:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, book: PriceBook) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.book = book
        self.job = Job(f"{config.site} day close", clock)

    def last_closable_day(self, now: datetime | None = None) -> date:
        """The newest day whose end plus the grace has passed."""
        now = now or self.clock.now()
        return site_day(now - self.config.day_close_grace, self.config.zone) - timedelta(days=1)

    def close_day(self, day: date, *, workspaces: Iterable[str] | None = None,
                  reason: str = "late usage", clear_late: bool = False) -> CloseResult:
        """Close ``day`` for every workspace (or those of ``workspaces``).

        One pass over the whole day in the normal case. Should it fail, the failure is
        contained to the workspaces that cause it: the day is closed again in parts
        (SAVEPOINTs, halving the part that fails) so that every other workspace is
        closed, billed and sent now; each failing one is kept in ``late_days`` (the way
        usage for a closed day waits for its adjustment), recorded in the job registry
        and tried again with backoff by :meth:`settle_late_usage`. The day is marked
        closed for the others either way. ``clear_late``: the close settles these
        workspaces' late usage, so their ``late_days`` rows go in its transaction
        (before it reads the day: usage arriving meanwhile marks the day again)."""
        now = self.clock.now()
        if day >= site_day(now, self.config.zone):
            raise Invalid("day_not_over",
                          f"{day.isoformat()} has not ended yet on site {self.config.site}")
        if day < site_day(now - self.config.late_horizon, self.config.zone):
            raise Invalid("day_beyond_horizon",
                          f"{day.isoformat()} is older than the late-data horizon")
        scope = None if workspaces is None else sorted(set(workspaces))
        failed: dict[str, BaseException] = {}
        with self.engine.begin() as conn:
            self.lock_day(conn, day)
            already = conn.execute(select(t.closed_days.c.day)
                                   .where(t.closed_days.c.day == day)).first() is not None
            if clear_late and scope:
                conn.execute(delete(t.late_days).where(
                    t.late_days.c.day == day, among(conn, t.late_days.c.workspace_id, scope)))
            try:
                with conn.begin_nested():
                    charges, adjustments = self._close_part(conn, day, scope, reason, now)
            except Exception as error:  # noqa: BLE001 (contained below, or re-raised there)
                _reraise_if_lost(error)
                log.warning("closing %s on %s failed (%s); closing it workspace group by "
                            "workspace group to contain the failure", day, self.config.site,
                            describe(error))
                charges, adjustments = self._isolate(conn, day, scope, reason, now, error,
                                                     failed)
            if failed:
                # They wait as late usage does; a later tick closes them once they can be.
                dialect_insert = (postgresql.insert if conn.dialect.name == "postgresql"
                                  else sqlite.insert)
                conn.execute(dialect_insert(t.late_days).on_conflict_do_nothing(), [
                    {"workspace_id": w, "day": day, "noted_at": now} for w in sorted(failed)])
            if not already:
                conn.execute(insert(t.closed_days).values(day=day, closed_at=now))
        for workspace_id, failure in sorted(failed.items()):
            unit = self._unit(workspace_id, day)
            previous = self.job.failure(unit)
            attempts = (previous.attempts if previous else 0) + 1
            self.job.unit_failed(unit, failure, attempts=attempts,
                                 next_attempt_at=now + backoff(attempts, RETRY_BASE, RETRY_CAP))
        if self.job.failing and scope is not None:
            self.job.units_ok([self._unit(w, day) for w in scope if w not in failed])
        elif self.job.failing:
            self.job.units_ok([u for u in list(self.job.failing)
                               if u.endswith(f"/{day.isoformat()}")
                               and u.split("/")[-2] not in failed])
        log.info("closed %s on %s: %d charges, %d adjustments%s", day, self.config.site, charges,
                 adjustments, f", {len(failed)} workspace(s) failing" if failed else "")
        return CloseResult(day, charges, adjustments, already,
                           {w: describe(e) for w, e in sorted(failed.items())})

    def _unit(self, workspace_id: str, day: date) -> str:
        return f"workspace/{workspace_id}/{day.isoformat()}"

    def _close_part(self, conn: Connection, day: date, scope: list[str] | None, reason: str,
                    now: datetime) -> tuple[int, int]:
        """Statistics → details → rows for the workspaces of ``scope`` (all if None), in
        the caller's transaction; (charges, adjustments)."""
        charges = adjustments = 0
        statistics, accounts = read_statistics(conn, day, scope)
        billed = read_billed(conn, self.config.site, day, scope)
        prices = RememberedPrices(self.book)
        # Part by part, in workspace order (the order one plan over the whole day gives);
        # on PostgreSQL the writer stores a part while the next one is priced.
        with RowWriter(conn) as writer:
            for statistics_part, billed_part in workspace_parts(statistics, billed):
                planned = plan_details(statistics_part, billed_part, book=prices,
                                       currency=self.config.currency,
                                       site_group=self.config.site_group, reason=reason)
                if not planned:
                    continue
                part_charges = sum(1 for p in planned if p.kind == "charge")
                charges += part_charges
                adjustments += len(planned) - part_charges
                rows = CloseRows(self.config.site, self.config.currency, now, accounts)
                rows.add(planned)
                writer.put(rows)
        return charges, adjustments

    def _isolate(self, conn: Connection, day: date, scope: list[str] | None, reason: str,
                 now: datetime, error: BaseException, failed: dict[str, BaseException]
                 ) -> tuple[int, int]:
        """Close the day again in halves, each in a SAVEPOINT, halving what fails, until
        the failing workspaces stand alone (in ``failed``); returns what the rest made."""
        candidates = scope if scope is not None else workspaces_of(conn, day)
        totals = [0, 0]

        def attempt(part: list[str]) -> BaseException | None:
            try:
                with conn.begin_nested():
                    made = self._close_part(conn, day, part, reason, now)
            except Exception as failure:  # noqa: BLE001 (contained: halved or recorded)
                _reraise_if_lost(failure)
                return failure
            totals[0] += made[0]
            totals[1] += made[1]
            return None

        def halve(part: list[str], failure: BaseException) -> None:
            if len(part) == 1 or len(failed) >= ISOLATE_FAILING_MAX:
                # Alone, or too many failing already: the whole part waits.
                failed.update(dict.fromkeys(part, failure))
                return
            middle = len(part) // 2
            for half in (part[:middle], part[middle:]):
                found = attempt(half)
                if found is not None:
                    halve(half, found)

        if candidates:
            halve(candidates, error)
        return totals[0], totals[1]

    def close_due_days(self) -> list[CloseResult]:
        """What the scheduler runs: every day up to the last closable one, then late usage."""
        with self.job.run():
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
        """Turn usage that arrived for closed days into adjustment details, and close the
        workspaces whose close failed once their next attempt is due."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            pending = conn.execute(select(t.late_days.c.workspace_id, t.late_days.c.day)).all()
        by_day: dict[date, list[str]] = {}
        for workspace_id, day in pending:
            if self.job.due(self._unit(workspace_id, day), now):
                by_day.setdefault(day, []).append(workspace_id)
        results = []
        horizon = site_day(now - self.config.late_horizon, self.config.zone)
        for day, workspace_ids in sorted(by_day.items()):
            if day < horizon:
                for workspace_id in workspace_ids:
                    unit = self._unit(workspace_id, day)
                    if self.job.failure(unit) is not None:
                        log.error("day close: %s on %s is past the late-data horizon while "
                                  "still failing; its usage of that day is not billed",
                                  workspace_id, day)
                        self.job.unit_ok(unit)
                        self.job.failures["beyond_horizon"] += 1
                with self.engine.begin() as conn:
                    conn.execute(delete(t.late_days).where(
                        t.late_days.c.day == day, among(conn, t.late_days.c.workspace_id,
                                                        workspace_ids)))
                continue
            results.append(self.close_day(day, workspaces=workspace_ids, clear_late=True))
        return results

    # -- steps ------------------------------------------------------------

    def lock_day(self, conn: Connection, day: date) -> None:
        """Hold ``day`` against other closes until ``conn``'s transaction ends."""
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(f"close-day/{self.config.site}/{day.isoformat()}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE).


def _reraise_if_lost(error: BaseException) -> None:
    """A lost connection is no workspace's fault: nothing to contain, the close fails."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        raise error
