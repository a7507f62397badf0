"""Usage ingestion: validate a batch, store each record once, note late days.

Bulk by design: one query for the batch's workspaces, then the rows in one go.
On PostgreSQL the rows stream into the table by binary COPY as they are
checked; a batch holding records that are already stored goes instead through
a session-local staging table and one ``INSERT … SELECT … ON CONFLICT DO
NOTHING``. Elsewhere (SQLite) they go in as multi-row ``INSERT … ON CONFLICT DO
NOTHING RETURNING``. A record counts once per (workspace, id); the same id with
another payload is a ``conflict``.

The newly stored records are then counted into the day's running totals
(``usage_day_totals``) in the same transaction, one multi-row write per batch:
what would take a total past its limit, or a free workspace past its quota, is
taken out again and answered per record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter

import psycopg.errors
from sqlalchemy import Connection, Engine, bindparam, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from accrual.catalog import PriceBook
from accrual.catalog.items import DataType
from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.admission import DISSOLVED, WORKSPACE_DISSOLVED, refuse_usage
from accrual.console.domain.plans import FREE
from accrual.console.domain.retention import record_retention
from accrual.console.domain.usage import (
    DayTotals,
    RecordChecker,
    Rejection,
    TotalKey,
    UsageLimits,
    UsageRow,
    daily_unit_limits,
)
from accrual.infra.bulk import among

INSERT_CHUNK = 5000

# PostgreSQL: a temporary table per session, emptied at every commit, that takes
# the batch by COPY. Its columns are UsageRow's fields, in order.
_STAGING = "accrual_usage_staging"
_STAGING_COLUMNS = ("workspace_id", "record_id", "item", "occurred_at", "day", "hour_start",
                    "retention_days", "quantity", "companion", "digest")
_STAGING_TYPES = ("text", "text", "text", "timestamptz", "date", "timestamptz", "int4", "int8",
                  "int8", "text")
assert UsageRow._fields == _STAGING_COLUMNS
_CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
    + ", ".join(f"{c} {ty}" for c, ty in zip(_STAGING_COLUMNS, _STAGING_TYPES, strict=True))
    + ") ON COMMIT DELETE ROWS")
_COLUMNS = ", ".join(_STAGING_COLUMNS)
_COPY_DIRECT = (f"COPY {t.usage_records.name} ({_COLUMNS}, received_at) "
                f"FROM STDIN (FORMAT BINARY)")
_DIRECT_TYPES = (*_STAGING_TYPES, "timestamptz")
_MOVE = (f"INSERT INTO {t.usage_records.name} ({_COLUMNS}, received_at) "
         f"SELECT {_COLUMNS}, %s FROM {_STAGING} "
         f"ORDER BY workspace_id COLLATE \"C\", record_id COLLATE \"C\" "
         f"ON CONFLICT DO NOTHING")
# Rows that were there before with another digest: the same id, another payload. One
# primary-key lookup per staged row (LATERAL … LIMIT 1 keeps the planner from hashing
# the whole usage table, which it would do for a join: the staging table has no
# statistics).
_CONFLICTS = (f"SELECT s.workspace_id, s.record_id FROM {_STAGING} s "
              f"CROSS JOIN LATERAL (SELECT u.digest FROM {t.usage_records.name} u "
              f"WHERE u.workspace_id = s.workspace_id AND u.record_id = s.record_id "
              f"LIMIT 1) u WHERE u.digest <> s.digest")


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class _Stored:
    inserted: list[int] | None  # positions in the batch's rows newly stored; None: all
    conflicts: set[tuple[str, str]]  # keys already stored with another payload


class Ingestion:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock,
                 book: PriceBook | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        highest: dict[str, Decimal] = {}
        for row in book.rows if book is not None else ():
            if row.currency == config.currency and row.site_group == config.site_group:
                highest[row.item] = max(highest.get(row.item, row.unit_price), row.unit_price)
        self.limits = UsageLimits(zone=config.zone, site_group=config.site_group,
                                  currency=config.currency, late_horizon=config.late_horizon,
                                  future_tolerance=config.future_tolerance,
                                  day_units=daily_unit_limits(highest))

    def ingest(self, records: Sequence[object], *, only_workspace: str | None = None) -> IngestResult:
        """Store a batch. ``only_workspace`` limits an ingest key to its own workspace.

        The records are stored first, then counted into the day's running totals with
        the workspaces' rows locked (PostgreSQL): a record that would take a total past
        the day's limit or a free workspace past its quota is taken out again, in the
        same transaction, and answered with ``daily_limit_exceeded``, ``quota_exceeded``
        or ``not_in_plan``. Duplicates and conflicts are never stored, so never counted.
        """
        now = self.clock.now()
        result = IngestResult()
        # (A NUL cannot be in a stored id, and PostgreSQL refuses it even as a parameter.)
        wanted = {w for r in records if isinstance(r, dict)
                  and isinstance(w := r.get("workspace_id"), str) and "\x00" not in w}
        if only_workspace is not None:
            wanted &= {only_workspace}
        w = t.workspaces
        with self.engine.begin() as conn:
            workspaces = {row.id: row for row in conn.execute(
                select(w.c.id, w.c.status, w.c.plan, w.c.commercial_since)
                .where(among(conn, w.c.id, wanted)))} if wanted else {}
            statuses = {id_: row.status for id_, row in workspaces.items()}
            policies: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
            if statuses:
                for row in conn.execute(select(t.retention_policies).where(
                        among(conn, t.retention_policies.c.workspace_id, statuses))
                        .order_by(t.retention_policies.c.effective_from)):
                    policies.setdefault((row.workspace_id, row.data_type), []).append(
                        (row.effective_from, row.retention_days))

            def resolve(workspace_id: str, data_type: DataType, at: datetime) -> int:
                workspace = workspaces[workspace_id]
                return record_retention(workspace.plan == FREE, workspace.commercial_since,
                                        policies.get((workspace_id, data_type.value), ()),
                                        data_type, at)

            check = RecordChecker(now=now, limits=self.limits, resolve_retention=resolve).check
            if conn.dialect.name == "postgresql":
                batch, stored = self._store_postgresql(conn, records, statuses, check, result, now)
            else:
                batch = _check_all(records, statuses, check, result)
                stored = self._store_rows(conn, batch, now)
            rows, positions = batch.rows, batch.positions
            if rows:
                fresh = list(range(len(rows))) if stored.inserted is None else stored.inserted
                refused = self._count(conn, rows, positions, fresh)
                if refused:
                    _retract(conn, [rows[p] for p in refused])
                    result.rejected.extend(refused.values())
                    fresh = [p for p in fresh if p not in refused]
                result.accepted = len(fresh)
                for key in stored.conflicts:
                    position = batch.keyed[key]
                    result.rejected.append(_conflict(positions[position],
                                                     rows[position].record_id))
                result.duplicates += (len(rows) - len(fresh) - len(refused)
                                      - len(stored.conflicts))
                closed = _closed_days(conn, {rows[p].day for p in fresh})
                late = sorted({(rows[p].workspace_id, rows[p].day) for p in fresh
                               if rows[p].day in closed})
                if late:
                    dialect_insert = (postgresql.insert if conn.dialect.name == "postgresql"
                                      else sqlite.insert)
                    conn.execute(dialect_insert(t.late_days).on_conflict_do_nothing(), [
                        {"workspace_id": w_, "day": d, "noted_at": now} for w_, d in late])
        result.rejected.sort(key=lambda r: r.index)
        return result

    def _count(self, conn: Connection, rows: list[UsageRow], positions: list[int],
               fresh: list[int]) -> dict[int, Rejection]:
        """Count the newly stored rows into the day's totals, in the order they were
        sent; answer the ones that may not count (by position in ``rows``)."""
        if not fresh:
            return {}
        workspace_ids = sorted({rows[p][0] for p in fresh})
        days = sorted({rows[p][4] for p in fresh})
        gone: set[str] = set()
        if conn.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            assert driver is not None
            with driver.cursor() as cursor:
                # Every writer of a workspace's totals holds its row until it commits, so
                # two batches cannot both pass a limit; locked in one order, so they never
                # deadlock. (SQLite transactions write one at a time: BEGIN IMMEDIATE.)
                cursor.execute(_LOCK_WORKSPACES, (workspace_ids,))
                plans = {}
                for workspace_id, plan, status in cursor.fetchall():
                    plans[workspace_id] = plan
                    if status == DISSOLVED:  # while this batch was being stored
                        gone.add(workspace_id)
                cursor.execute(_READ_TOTALS, (workspace_ids, days))
                totals: dict[TotalKey, list[int]] = {
                    (w, d, i, r): [q, c] for w, d, i, r, q, c in cursor.fetchall()}
        else:
            w, d = t.workspaces, t.usage_day_totals
            plans = dict(conn.execute(
                select(w.c.id, w.c.plan).where(among(conn, w.c.id, workspace_ids))).all())
            totals = {(r.workspace_id, r.day, r.item, r.retention_days): [r.quantity, r.companion]
                      for r in conn.execute(select(d).where(
                          among(conn, d.c.workspace_id, workspace_ids), d.c.day.in_(days)))}
        counter = DayTotals(totals, self.limits, {i for i, plan in plans.items() if plan == FREE})
        refused: dict[int, Rejection] = {}
        if gone:
            refused = {p: Rejection(positions[p], WORKSPACE_DISSOLVED.code,
                                    WORKSPACE_DISSOLVED.message)
                       for p in fresh if rows[p][0] in gone}
            fresh = [p for p in fresh if p not in refused]
        refused.update(counter.count(rows, fresh, positions))
        if counter.touched:
            _write_totals(conn, sorted((w, d, i, r, totals[(w, d, i, r)][0],
                                        totals[(w, d, i, r)][1])
                                       for w, d, i, r in counter.touched), counter.created)
        return refused

    def _store_postgresql(self, conn: Connection, records: Sequence[object],
                          statuses: dict[str, str], check: Checker, result: IngestResult,
                          now: datetime) -> tuple[_Batch, _Stored]:
        """Stream the rows straight into the table with COPY while they are checked.

        Fresh records (the usual case) are then stored by the time the last one is
        checked, the database indexing them while Python checks the next ones. A
        record that is already there makes the COPY fail with a unique violation:
        back to the savepoint, and the batch goes through the staging table and
        ``ON CONFLICT DO NOTHING`` instead. (A batch whose first record is already
        stored, as when a collector resends one, goes there at once.)
        """
        driver = conn.connection.driver_connection
        assert driver is not None
        if _first_is_stored(conn, records, statuses):
            checked = _check_all(records, statuses, check, result)
            return checked, self._store_staged(conn, checked, now)
        savepoint = conn.begin_nested()
        batch: _Batch | None = None
        try:
            with driver.cursor() as cursor, cursor.copy(_COPY_DIRECT) as copy:
                copy.set_types(_DIRECT_TYPES)
                run = _SortedRuns(copy.write_row)
                batch = _check_all(records, statuses, check, result, run.add, (now,))
                run.flush()
            savepoint.commit()
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            savepoint.rollback()
            if batch is None:  # failed before every record was checked: check them again
                result.duplicates, result.rejected[:] = 0, []
                batch = _check_all(records, statuses, check, result)
            return batch, self._store_staged(conn, batch, now)
        return batch, _Stored(None, set())

    @staticmethod
    def _store_staged(conn: Connection, batch: _Batch, now: datetime) -> _Stored:
        """COPY into the session's staging table, then one set-based move."""
        rows = batch.rows
        if not rows:
            return _Stored([], set())
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(_CREATE_STAGING)
            with cursor.copy(f"COPY {_STAGING} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STAGING_TYPES)
                write = copy.write_row
                for row in rows:
                    write(row)
            cursor.execute(_MOVE + " RETURNING workspace_id, record_id", (now,))
            keyed = batch.keyed
            inserted = sorted(keyed[(w, r)] for w, r in cursor.fetchall())
            conflicts: set[tuple[str, str]] = set()
            if len(inserted) < len(rows):
                cursor.execute(_CONFLICTS)
                conflicts = {(w, r) for w, r in cursor.fetchall()}
        return _Stored(inserted, conflicts)

    @staticmethod
    def _store_rows(conn: Connection, batch: _Batch, now: datetime) -> _Stored:
        """Multi-row INSERT … ON CONFLICT DO NOTHING RETURNING (SQLite and others)."""
        rows = batch.rows
        if not rows:
            return _Stored([], set())
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = (dialect_insert(t.usage_records).on_conflict_do_nothing()
                     .returning(t.usage_records.c.workspace_id, t.usage_records.c.record_id))
        inserted: set[tuple[str, str]] = set()
        for start in range(0, len(rows), INSERT_CHUNK):
            params = [
                {"workspace_id": r.workspace_id, "record_id": r.record_id, "item": r.item,
                 "occurred_at": r.occurred_at, "day": r.day, "hour_start": r.hour_start,
                 "retention_days": r.retention_days, "quantity": r.quantity,
                 "companion": r.companion, "digest": r.digest,
                 "received_at": now}
                for r in rows[start:start + INSERT_CHUNK]
            ]
            inserted.update((w, i) for w, i in conn.execute(statement, params).all())
        keyed = batch.keyed
        leftovers = [key for key in keyed if key not in inserted]
        stored: dict[tuple[str, str], str] = {}
        for start in range(0, len(leftovers), INSERT_CHUNK):
            chunk = leftovers[start:start + INSERT_CHUNK]
            stored.update({(w, i): digest for w, i, digest in conn.execute(
                select(t.usage_records.c.workspace_id, t.usage_records.c.record_id,
                       t.usage_records.c.digest)
                .where(tuple_(t.usage_records.c.workspace_id,
                              t.usage_records.c.record_id).in_(chunk)))})
        conflicts = {key for key in leftovers if stored.get(key) != rows[keyed[key]].digest}
        return _Stored(sorted(keyed[key] for key in inserted), conflicts)


Checker = Callable[[int, object], "UsageRow | Rejection"]


@dataclass
class _Batch:
    """The valid records of a batch, one row per (workspace, id), with their indexes."""

    keyed: dict[tuple[str, str], int] = field(default_factory=dict)  # key → position in rows
    rows: list[UsageRow] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # record index of each row


def _check_all(records: Sequence[object], statuses: dict[str, str], check: Checker,
               result: IngestResult, emit: Callable[[tuple[object, ...]], object] | None = None,
               suffix: tuple[object, ...] = ()) -> _Batch:
    """Judge every record; each new row, followed by ``suffix``, also goes to ``emit``
    as soon as it is known."""
    batch = _Batch()
    keyed, rows, positions = batch.keyed, batch.rows, batch.positions
    rejected = result.rejected
    for index, raw in enumerate(records):
        if isinstance(raw, dict):
            workspace_id = raw.get("workspace_id")
            refusal = refuse_usage(statuses.get(workspace_id)
                                   if isinstance(workspace_id, str) else None)
            if refusal is not None:
                rejected.append(Rejection(index, refusal.code, refusal.message))
                continue
        checked = check(index, raw)
        if isinstance(checked, Rejection):
            rejected.append(checked)
            continue
        key = (checked.workspace_id, checked.record_id)
        seen = keyed.get(key)
        if seen is None:
            keyed[key] = len(rows)
            rows.append(checked)
            positions.append(index)
            if emit is not None:
                emit(checked + suffix)
        elif rows[seen].digest == checked.digest:
            result.duplicates += 1
        else:
            rejected.append(_conflict(index, checked.record_id))
    return batch


class _SortedRuns:
    """Hands rows on in runs of RUN, each sorted by key: the table's indexes then take
    them page by page instead of all over (about a quarter less work for the database)."""

    RUN = 2000
    _key = staticmethod(itemgetter(0, 1))  # (workspace_id, record_id)

    def __init__(self, write: Callable[[tuple[object, ...]], object]) -> None:
        self.write = write
        self.rows: list[tuple[object, ...]] = []

    def add(self, row: tuple[object, ...]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.RUN:
            self.flush()

    def flush(self) -> None:
        self.rows.sort(key=self._key)
        write = self.write
        for row in self.rows:
            write(row)
        self.rows.clear()


def _first_is_stored(conn: Connection, records: Sequence[object],
                     statuses: dict[str, str]) -> bool:
    for raw in records:
        if isinstance(raw, dict):
            workspace_id, record_id = raw.get("workspace_id"), raw.get("id")
            if isinstance(workspace_id, str) and workspace_id in statuses \
                    and isinstance(record_id, str) \
                    and 0 < len(record_id) <= 128 and "\x00" not in record_id:
                u = t.usage_records
                return conn.execute(select(u.c.record_id).where(
                    u.c.workspace_id == workspace_id, u.c.record_id == record_id)).first() \
                    is not None
    return False


def _closed_days(conn: Connection, days: set[date]) -> set[date]:
    if not days:
        return set()
    return set(conn.execute(select(t.closed_days.c.day)
                            .where(t.closed_days.c.day.in_(days))).scalars())


def _conflict(index: int, record_id: str) -> Rejection:
    return Rejection(index, "conflict",
                     f"record {record_id!r} was already received with a different payload")


_LOCK_WORKSPACES = (f"SELECT id, plan, status FROM {t.workspaces.name} WHERE id = ANY(%s) "
                    "ORDER BY id FOR UPDATE")
_READ_TOTALS = (f"SELECT workspace_id, day, item, retention_days, quantity, companion "
                f"FROM {t.usage_day_totals.name} WHERE workspace_id = ANY(%s) AND day = ANY(%s)")
_TOTALS_COLUMNS = ("workspace_id", "day", "item", "retention_days", "quantity", "companion")
# PostgreSQL: the totals a batch changed, in one statement each for the new and the
# existing ones (arrays, not a row of placeholders per total). Their workspaces are
# locked, so no other transaction writes them meanwhile.
_UNNEST_TOTALS = ("unnest(%s::text[], %s::date[], %s::text[], %s::int4[], %s::int8[], "
                  "%s::int8[])")
_INSERT_TOTALS = (f"INSERT INTO {t.usage_day_totals.name} ({', '.join(_TOTALS_COLUMNS)}) "
                  f"SELECT * FROM {_UNNEST_TOTALS}")
_UPDATE_TOTALS = (f"UPDATE {t.usage_day_totals.name} d SET quantity = v.q, companion = v.c "
                  f"FROM {_UNNEST_TOTALS} v(w, d, i, r, q, c) WHERE d.workspace_id = v.w "
                  "AND d.day = v.d AND d.item = v.i AND d.retention_days = v.r")
_RETRACT = (f"DELETE FROM {t.usage_records.name} WHERE (workspace_id, record_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))")


def _write_totals(conn: Connection, totals: list[tuple[str, date, str, int, int, int]],
                  created: set[TotalKey]) -> None:
    """Set these (workspace, day, item, tier, quantity, companion) totals."""
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            for statement, part in (
                    (_UPDATE_TOTALS, [total for total in totals if total[:4] not in created]),
                    (_INSERT_TOTALS, [total for total in totals if total[:4] in created])):
                if part:
                    cursor.execute(statement, [list(column) for column in zip(*part, strict=True)],
                                   binary=True)
        return
    d = t.usage_day_totals
    insert_ = sqlite.insert(d)
    upsert = insert_.on_conflict_do_update(
        index_elements=[d.c.workspace_id, d.c.day, d.c.item, d.c.retention_days],
        set_={"quantity": insert_.excluded.quantity, "companion": insert_.excluded.companion})
    conn.execute(upsert, [dict(zip(_TOTALS_COLUMNS, total, strict=True)) for total in totals])


def _retract(conn: Connection, rows: list[UsageRow]) -> None:
    """Take out rows this transaction stored and then refused."""
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(_RETRACT, ([r.workspace_id for r in rows], [r.record_id for r in rows]))
        return
    u = t.usage_records
    conn.execute(delete(u).where(u.c.workspace_id == bindparam("w"),
                                 u.c.record_id == bindparam("r")),
                 [{"w": r.workspace_id, "r": r.record_id} for r in rows])
