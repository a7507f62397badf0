"""Usage ingestion: validate a batch, store each record once, note late days.

Bulk by design: one query for the batch's workspaces, one multi-row
``INSERT … ON CONFLICT DO NOTHING RETURNING`` for the rows, one query for the
ids that were already there. A record counts once per (workspace, id); the
same id with another payload is a ``conflict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from accrual.catalog.items import RETENTION_DEFAULTS, DataType
from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.usage import Rejection, UsageLimits, UsageRow, validate_record

INSERT_CHUNK = 5000


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


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
        wanted = {r.get("workspace_id") for r in records if isinstance(r, dict)}
        wanted = {w for w in wanted if isinstance(w, str)}
        if only_workspace is not None:
            wanted &= {only_workspace}
        with self.engine.begin() as conn:
            statuses = dict(conn.execute(
                select(t.workspaces.c.id, t.workspaces.c.status)
                .where(t.workspaces.c.id.in_(wanted))).all()) if wanted else {}
            policies: dict[tuple[str, str], list[tuple[datetime, int]]] = {}
            if statuses:
                for row in conn.execute(select(t.retention_policies).where(
                        t.retention_policies.c.workspace_id.in_(list(statuses)))
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

            rows: dict[tuple[str, str], tuple[int, UsageRow]] = {}
            for index, raw in enumerate(records):
                if isinstance(raw, dict):
                    status = statuses.get(raw.get("workspace_id"))  # type: ignore[arg-type]
                    if status is None:
                        result.rejected.append(Rejection(
                            index, "unknown_workspace",
                            "unknown workspace, or not one this key may write to"))
                        continue
                    if status == "dissolved":
                        result.rejected.append(Rejection(
                            index, "workspace_dissolved", "the workspace was dissolved"))
                        continue
                checked = validate_record(index, raw, now=now, limits=self.limits,
                                          resolve_retention=resolve)
                if isinstance(checked, Rejection):
                    result.rejected.append(checked)
                    continue
                key = (checked.workspace_id, checked.record_id)
                seen = rows.get(key)
                if seen is None:
                    rows[key] = (index, checked)
                elif seen[1].digest == checked.digest:
                    result.duplicates += 1
                else:
                    result.rejected.append(_conflict(index, checked.record_id))

            inserted = self._insert(conn, [row for _, row in rows.values()], now)
            result.accepted = len(inserted)
            leftovers = [key for key in rows if key not in inserted]
            if leftovers:
                stored = {}
                for start in range(0, len(leftovers), INSERT_CHUNK):
                    chunk = leftovers[start:start + INSERT_CHUNK]
                    stored.update({
                        (r.workspace_id, r.record_id): r.digest for r in conn.execute(
                            select(t.usage_records.c.workspace_id, t.usage_records.c.record_id,
                                   t.usage_records.c.digest)
                            .where(tuple_(t.usage_records.c.workspace_id,
                                          t.usage_records.c.record_id).in_(chunk)))})
                for key in leftovers:
                    index, row = rows[key]
                    if stored.get(key) == row.digest:
                        result.duplicates += 1
                    else:
                        result.rejected.append(_conflict(index, row.record_id))
            self._note_late_days(conn, [rows[key][1] for key in inserted], now)
        result.rejected.sort(key=lambda r: r.index)
        return result

    def _insert(self, conn, rows: list[UsageRow], now: datetime) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
        if not rows:
            return set()
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = (dialect_insert(t.usage_records).on_conflict_do_nothing()
                     .returning(t.usage_records.c.workspace_id, t.usage_records.c.record_id))
        inserted: set[tuple[str, str]] = set()
        for start in range(0, len(rows), INSERT_CHUNK):
            params = [
                {"workspace_id": r.workspace_id, "record_id": r.record_id, "item": r.item,
                 "occurred_at": r.occurred_at, "day": r.day, "hour_start": r.hour_start,
                 "retention_days": r.retention_days, "quantity": r.quantity, "digest": r.digest,
                 "received_at": now}
                for r in rows[start:start + INSERT_CHUNK]
            ]
            inserted.update((w, i) for w, i in conn.execute(statement, params).all())
        return inserted

    def _note_late_days(self, conn, rows: list[UsageRow], now: datetime) -> None:  # type: ignore[no-untyped-def]
        days = {r.day for r in rows}
        if not days:
            return
        closed = set(conn.execute(select(t.closed_days.c.day)
                                  .where(t.closed_days.c.day.in_(days))).scalars())
        late = {(r.workspace_id, r.day) for r in rows if r.day in closed}
        if late:
            dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(dialect_insert(t.late_days).on_conflict_do_nothing(), [
                {"workspace_id": w, "day": d, "noted_at": now} for w, d in sorted(late)])


def _conflict(index: int, record_id: str) -> Rejection:
    return Rejection(index, "conflict",
                     f"record {record_id!r} was already received with a different payload")
