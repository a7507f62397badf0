"""Usage ingestion: validate a batch, store each record once, note late days.

Bulk by design: one query for the batch's workspaces, then the rows in one go.
On PostgreSQL the rows stream into the table by binary COPY as they are
checked; a batch holding records that are already stored goes instead through
a session-local staging table and one ``INSERT … SELECT … ON CONFLICT DO
NOTHING``. Elsewhere (SQLite) they go in as multi-row ``INSERT … ON CONFLICT DO
NOTHING RETURNING``. A record counts once per (workspace, id); the same id with
another payload is a ``conflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter

import psycopg.errors
from sqlalchemy import Connection, Engine, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from accrual.catalog.items import RETENTION_DEFAULTS, DataType
from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.usage import RecordChecker, Rejection, UsageLimits, UsageRow
from accrual.infra.bulk import among

INSERT_CHUNK = 5000

# PostgreSQL: a temporary table per session, emptied at every commit, that takes
# the batch by COPY. Its columns are UsageRow's fields, in order.
_STAGING = "accrual_usage_staging"
_STAGING_COLUMNS = ("workspace_id", "record_id", "item", "occurred_at", "day", "hour_start",
                    "retention_days", "quantity", "companion", "digest")
_STAGING_TYPES = ("text", "text", "text", "timestamptz", "date", "timestamptz", "int4", "int8",
                  "int8", "text")
assert _STAGING_COLUMNS == UsageRow._fields
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
    accepted: int
    conflicts: set[tuple[str, str]]  # keys already stored with another payload
    late: set[tuple[str, date]]  # (workspace, closed day) pairs that got new usage


class Ingestion:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.limits = UsageLimits(zone=config.zone, site_group=config.site_group,
                                  currency=config.currency, late_horizon=config.late_horizon,
                                  future_tolerance=config.future_tolerance)

    def ingest(self, records: Sequence[object], *, only_workspace: str | None = None) -> IngestResult:
        """Store a batch. ``only_workspace`` limits an ingest key to its own workspace."""
        now = self.clock.now()
        result = IngestResult()
        # (A NUL cannot be in a stored id, and PostgreSQL refuses it even as a parameter.)
        wanted = {w for r in records if isinstance(r, dict)
                  and isinstance(w := r.get("workspace_id"), str) and "\x00" not in w}
        if only_workspace is not None:
            wanted &= {only_workspace}
        with self.engine.begin() as conn:
            statuses = dict(conn.execute(
                select(t.workspaces.c.id, t.workspaces.c.status)
                .where(among(conn, t.workspaces.c.id, wanted))).all()) if wanted else {}
            policies: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
            if statuses:
                for row in conn.execute(select(t.retention_policies).where(
                        among(conn, t.retention_policies.c.workspace_id, statuses))
                        .order_by(t.retention_policies.c.effective_from)):
                    policies.setdefault((row.workspace_id, row.data_type), []).append(
                        (row.effective_from, row.retention_days))

            def resolve(workspace_id: str, data_type: DataType, at: datetime) -> int:
                retention = RETENTION_DEFAULTS[data_type]
                for effective_from, days in policies.get((workspace_id, data_type.value), ()):
                    if effective_from > at:
                        break
                    retention = days
                return retention

            check = RecordChecker(now=now, limits=self.limits, resolve_retention=resolve).check
            if conn.dialect.name == "postgresql":
                batch, stored = self._store_postgresql(conn, records, statuses, check, result, now)
            else:
                batch = _check_all(records, statuses, check, result)
                stored = self._store_rows(conn, batch.rows, now)
            keyed, rows, positions = batch.keyed, batch.rows, batch.positions
            if rows:
                result.accepted = stored.accepted
                for key in stored.conflicts:
                    position = keyed[key]
                    result.rejected.append(_conflict(positions[position],
                                                     rows[position].record_id))
                result.duplicates += len(rows) - stored.accepted - len(stored.conflicts)
                if stored.late:
                    dialect_insert = (postgresql.insert if conn.dialect.name == "postgresql"
                                      else sqlite.insert)
                    conn.execute(dialect_insert(t.late_days).on_conflict_do_nothing(), [
                        {"workspace_id": w, "day": d, "noted_at": now}
                        for w, d in sorted(stored.late)])
        result.rejected.sort(key=lambda r: r.index)
        return result

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
            batch = _check_all(records, statuses, check, result)
            return batch, self._store_staged(conn, batch.rows, now)
        savepoint = conn.begin_nested()
        batch: _Batch | None = None
        try:
            with driver.cursor() as cursor:
                with cursor.copy(_COPY_DIRECT) as copy:
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
            return batch, self._store_staged(conn, batch.rows, now)
        closed = _closed_days(conn, {r.day for r in batch.rows})
        return batch, _Stored(len(batch.rows), set(),
                              {(r.workspace_id, r.day) for r in batch.rows if r.day in closed})

    @staticmethod
    def _store_staged(conn: Connection, rows: list[UsageRow], now: datetime) -> _Stored:
        """COPY into the session's staging table, then one set-based move."""
        if not rows:
            return _Stored(0, set(), set())
        closed = _closed_days(conn, {r.day for r in rows})
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(_CREATE_STAGING)
            with cursor.copy(f"COPY {_STAGING} FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STAGING_TYPES)
                write = copy.write_row
                for row in rows:
                    write(row)
            late: set[tuple[str, date]] = set()
            if closed:
                cursor.execute(_MOVE + " RETURNING workspace_id, day", (now,))
                late = {(w, d) for w, d in cursor.fetchall() if d in closed}
            else:
                cursor.execute(_MOVE, (now,))
            accepted = cursor.rowcount
            conflicts: set[tuple[str, str]] = set()
            if accepted < len(rows):
                cursor.execute(_CONFLICTS)
                conflicts = {(w, r) for w, r in cursor.fetchall()}
        return _Stored(accepted, conflicts, late)

    @staticmethod
    def _store_rows(conn: Connection, rows: list[UsageRow], now: datetime) -> _Stored:
        """Multi-row INSERT … ON CONFLICT DO NOTHING RETURNING (SQLite and others)."""
        if not rows:
            return _Stored(0, set(), set())
        closed = _closed_days(conn, {r.day for r in rows})
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
        by_key = {(r.workspace_id, r.record_id): r for r in rows}
        leftovers = [key for key in by_key if key not in inserted]
        stored: dict[tuple[str, str], str] = {}
        for start in range(0, len(leftovers), INSERT_CHUNK):
            chunk = leftovers[start:start + INSERT_CHUNK]
            stored.update({(w, i): digest for w, i, digest in conn.execute(
                select(t.usage_records.c.workspace_id, t.usage_records.c.record_id,
                       t.usage_records.c.digest)
                .where(tuple_(t.usage_records.c.workspace_id,
                              t.usage_records.c.record_id).in_(chunk)))})
        conflicts = {key for key in leftovers if stored.get(key) != by_key[key].digest}
        late = {(by_key[key].workspace_id, by_key[key].day) for key in inserted
                if by_key[key].day in closed}
        return _Stored(len(inserted), conflicts, late)


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
            status = statuses.get(workspace_id) if isinstance(workspace_id, str) else None
            if status is None:
                rejected.append(Rejection(
                    index, "unknown_workspace",
                    "unknown workspace, or not one this key may write to"))
                continue
            if status == "dissolved":
                rejected.append(Rejection(
                    index, "workspace_dissolved", "the workspace was dissolved"))
                continue
            if status == "locked":
                rejected.append(Rejection(
                    index, "workspace_locked",
                    "the workspace is locked because its billing account is in arrears; "
                    "top up the account or change the workspace's settlement method in the "
                    "billing center, and it is unlocked at once"))
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
