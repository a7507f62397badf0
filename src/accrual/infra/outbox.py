"""Transactional outbox and its relay, used by both sides on their own tables.

A message is written in the same transaction as the change it announces; the
relay delivers pending messages in order, at least once, and marks them sent
when the receiver acknowledges them. Receivers apply each id at most once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from accrual.clock import Clock
from accrual.contract.messages import Envelope
from accrual.infra.bulk import among, insert_rows
from accrual.infra.db import UtcDateTime

log = logging.getLogger(__name__)

# From this many messages on, enqueue writes them in bulk (COPY on PostgreSQL).
BULK_THRESHOLD = 100
_COLUMNS = ("message_id", "type", "body", "created_at", "attempts", "next_attempt_at")

BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_CAP = timedelta(minutes=10)


def outbox_table(name: str, metadata: MetaData) -> Table:
    """A side's outbox: messages written with the change they announce, sent by the relay."""
    return Table(
        name, metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(64), nullable=False, unique=True),
        Column("type", String(32), nullable=False),
        Column("body", Text, nullable=False),  # the JSON envelope
        Column("created_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime()),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", UtcDateTime(), nullable=False),
        Column("last_error", Text),
        Index(f"ix_{name}_pending", "sent_at", "next_attempt_at"),
    )


def inbox_table(name: str, metadata: MetaData) -> Table:
    """A side's inbox: the ids of the messages it applied, each at most once."""
    return Table(
        name, metadata,
        Column("message_id", String(64), primary_key=True),
        Column("type", String(32), nullable=False),
        Column("applied_at", UtcDateTime(), nullable=False),
    )


def enqueue(conn: Connection, table: Table, envelopes: Sequence[Envelope], now: datetime) -> None:
    if not envelopes:
        return
    if len(envelopes) >= BULK_THRESHOLD:
        enqueue_serialized(conn, table, ((e.id, e.type, e.model_dump_json()) for e in envelopes),
                           now)
        return
    conn.execute(insert(table), [
        {"message_id": e.id, "type": e.type, "body": e.model_dump_json(), "created_at": now,
         "attempts": 0, "next_attempt_at": now}
        for e in envelopes
    ])


def enqueue_serialized(conn: Connection, table: Table, messages: Iterable[tuple[str, str, str]],
                       now: datetime) -> None:
    """Enqueue messages given as (id, type, envelope JSON), e.g. the thousands of a day close.

    The JSON must be what ``Envelope.model_dump_json()`` gives (the relay parses it back).
    """
    insert_rows(conn, table, _COLUMNS,
                ((message_id, kind, body, now, 0, now) for message_id, kind, body in messages))


@dataclass
class RelayStats:
    delivered: int = 0
    failed_batches: int = 0
    last_error: str | None = None


class Relay:
    """Drains one outbox into one receiver (`deliver` returns the ids it applied)."""

    def __init__(self, engine: Engine, table: Table, deliver: Callable[[Sequence[Envelope]], list[str]],
                 clock: Clock, batch_size: int = 1000) -> None:
        self._engine = engine
        self._table = table
        self._deliver = deliver
        self._clock = clock
        self._batch_size = batch_size
        self.stats = RelayStats()

    def drain(self, max_batches: int = 1000) -> int:
        """Deliver what is due now; returns how many messages were acknowledged."""
        delivered = 0
        after: int | None = None  # PostgreSQL: the seq the next batch starts after
        for _ in range(max_batches):
            sent, after = self._one_batch(after)
            if sent <= 0:
                break
            delivered += sent
        return delivered

    def _pending_batch(self, conn: Connection, now: datetime, after: int | None
                       ) -> tuple[list[Row[Any]], int | None]:
        """The next due messages in seq order, locked, and the seq to continue after.

        On PostgreSQL the batch is found by walking the primary key from where the
        previous batch of this drain ended (where the first one starts: the lowest due
        seq), so each batch costs its own size however long the backlog is; sorting every
        pending row for each batch made draining a day close's hundreds of thousands of
        messages quadratic. Messages committed meanwhile under a lower seq are found by
        the next drain. Elsewhere (SQLite, one relay): the plain query.
        """
        t = self._table
        due = (t.c.sent_at.is_(None), t.c.next_attempt_at <= now)
        columns = (t.c.seq, t.c.message_id, t.c.body, t.c.attempts)
        if conn.dialect.name != "postgresql":
            return list(conn.execute(select(*columns).where(*due).order_by(t.c.seq)
                                     .limit(self._batch_size)).all()), None
        if after is None:
            lowest = conn.execute(select(func.min(t.c.seq)).where(*due)).scalar()
            if lowest is None:
                return [], None
            after = lowest - 1
        while True:
            window = list(conn.execute(select(t.c.seq).where(t.c.seq > after)
                                       .order_by(t.c.seq).limit(self._batch_size)).scalars())
            if not window:
                return [], after
            rows = list(conn.execute(
                select(*columns).where(among(conn, t.c.seq, window, Integer()), *due)
                .order_by(t.c.seq)
                # Several relays may run; each takes its own rows.
                .with_for_update(skip_locked=True)).all())
            after = window[-1]
            if rows:
                return rows, after

    def _one_batch(self, after: int | None = None) -> tuple[int, int | None]:
        t = self._table
        now = self._clock.now()
        with self._engine.begin() as conn:
            rows, after = self._pending_batch(conn, now, after)
            if not rows:
                return 0, after
            envelopes = [Envelope.model_validate_json(row.body) for row in rows]
            try:
                applied = set(self._deliver(envelopes))
            except Exception as error:  # any transport failure: back off and retry later
                self.stats.failed_batches += 1
                self.stats.last_error = str(error)
                log.warning("outbox %s: delivery of %d messages failed: %s",
                            t.name, len(rows), error)
                for row in rows:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(row.attempts, 16)))
                    delay = delay * (0.5 + random.random() / 2)  # noqa: S311 (jitter only)
                    conn.execute(update(t).where(t.c.seq == row.seq).values(
                        attempts=row.attempts + 1, next_attempt_at=now + delay,
                        last_error=str(error)[:500]))
                return -1, after
            acked = [row.seq for row in rows if row.message_id in applied]
            if acked:
                conn.execute(update(t).where(among(conn, t.c.seq, acked, Integer())).values(
                    sent_at=now, attempts=t.c.attempts + 1, last_error=None))
            self.stats.delivered += len(acked)
            return len(acked), after

    def backlog(self) -> tuple[int, datetime | None]:
        """Pending messages and the creation time of the oldest (for metrics)."""
        t = self._table
        with self._engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))).one()
        return int(count), oldest
