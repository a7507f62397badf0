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
from accrual.infra.jobs import Job, backoff

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


class Delivered(list[str]):
    """What a receiver's ``deliver`` answers: the ids it applied (new or earlier), as a
    list, and in ``failed`` the ids it could not apply with why (a message that fails is
    reported, never fails the others of its batch). A receiver may answer a plain list:
    what it did not apply is then retried with no reason known."""

    def __init__(self, applied: Iterable[str] = (), failed: dict[str, str] | None = None
                 ) -> None:
        super().__init__(applied)
        self.failed: dict[str, str] = dict(failed or {})


NOT_APPLIED = "not applied by the receiver"


@dataclass
class RelayStats:
    delivered: int = 0
    failed_batches: int = 0
    last_error: str | None = None


class Relay:
    """Drains one outbox into one receiver (`deliver` returns the ids it applied)."""

    def __init__(self, engine: Engine, table: Table, deliver: Callable[[Sequence[Envelope]], list[str]],
                 clock: Clock, batch_size: int = 1000, name: str | None = None) -> None:
        self._engine = engine
        self._table = table
        self._deliver = deliver
        self._clock = clock
        self._batch_size = batch_size
        self.stats = RelayStats()
        # Its units are messages (``message/<id>``), failing while the receiver refuses them.
        self.job = Job(name or f"relay {table.name}", clock)

    def drain(self, max_batches: int = 1000) -> int:
        """Deliver what is due now; returns how many messages were acknowledged.

        A message the receiver does not apply is passed over for this drain (and backs
        off when the receiver said why), so it never holds up the messages behind it; a
        batch that fails as a whole (the receiver unreachable) ends the drain."""
        with self.job.run():
            delivered = 0
            after: int | None = None  # the seq the next batch starts after
            for _ in range(max_batches):
                sent, after = self._one_batch(after)
                if sent < 0 or after is None:
                    break
                delivered += sent
            return delivered

    def _pending_batch(self, conn: Connection, now: datetime, after: int | None
                       ) -> tuple[list[Row[Any, Any, Any, Any]], int | None]:
        """The next due messages in seq order, locked, and the seq to continue after
        (None when nothing is left).

        On PostgreSQL the batch is found by walking the primary key from where the
        previous batch of this drain ended (where the first one starts: the lowest due
        seq), so each batch costs its own size however long the backlog is; sorting every
        pending row for each batch made draining a day close's hundreds of thousands of
        messages quadratic. Messages committed meanwhile under a lower seq are found by
        the next drain. Elsewhere (SQLite, one relay): the plain query, from where the
        previous batch ended too (a message left unapplied is not offered again in the
        same drain, so it never holds up the ones behind it).
        """
        t = self._table
        due = (t.c.sent_at.is_(None), t.c.next_attempt_at <= now)
        columns = (t.c.seq, t.c.message_id, t.c.body, t.c.attempts)
        if conn.dialect.name != "postgresql":
            query = select(*columns).where(*due)
            if after is not None:
                query = query.where(t.c.seq > after)
            rows = list(conn.execute(query.order_by(t.c.seq).limit(self._batch_size)).all())
            return rows, (rows[-1].seq if rows else None)
        if after is None:
            lowest = conn.execute(select(func.min(t.c.seq)).where(*due)).scalar()
            if lowest is None:
                return [], None
            after = lowest - 1
        while True:
            window = list(conn.execute(select(t.c.seq).where(t.c.seq > after)
                                       .order_by(t.c.seq).limit(self._batch_size)).scalars())
            if not window:
                return [], None
            rows = list(conn.execute(
                select(*columns).where(among(conn, t.c.seq, window, Integer()), *due)
                .order_by(t.c.seq)
                # Several relays may run; each takes its own rows.
                .with_for_update(skip_locked=True)).all())
            after = window[-1]
            if rows:
                return rows, after

    def _one_batch(self, after: int | None = None) -> tuple[int, int | None]:
        """One batch: (acknowledged, seq to continue after); (-1, …) when the delivery
        failed as a whole, (0, None) when nothing was due."""
        t = self._table
        now = self._clock.now()
        with self._engine.begin() as conn:
            rows, after = self._pending_batch(conn, now, after)
            if not rows:
                return 0, None
            envelopes = [Envelope.model_validate_json(row.body) for row in rows]
            try:
                answer = self._deliver(envelopes)
            except Exception as error:  # noqa: BLE001 - any transport failure: back off, retry
                self.stats.failed_batches += 1
                self.stats.last_error = str(error)
                log.warning("outbox %s: delivery of %d messages failed: %s",
                            t.name, len(rows), error)
                for row in rows:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(row.attempts, 16)))
                    delay = delay * (0.5 + random.random() / 2)
                    conn.execute(update(t).where(t.c.seq == row.seq).values(
                        attempts=row.attempts + 1, next_attempt_at=now + delay,
                        last_error=str(error)[:500]))
                self.job.unit_failed("receiver", error, attempts=rows[0].attempts + 1)
                return -1, after
            applied = set(answer)
            failed: dict[str, str] = getattr(answer, "failed", {})
            acked = [row.seq for row in rows if row.message_id in applied]
            if acked:
                conn.execute(update(t).where(among(conn, t.c.seq, acked, Integer())).values(
                    sent_at=now, attempts=t.c.attempts + 1, last_error=None))
            self._refused(conn, [row for row in rows if row.message_id not in applied],
                          failed, now)
            if self.job.failing:
                self.job.units_ok([f"message/{row.message_id}" for row in rows
                                   if row.message_id in applied])
                self.job.unit_ok("receiver")
            self.stats.delivered += len(acked)
            return len(acked), after

    def _refused(self, conn: Connection, rows: list[Row[Any, Any, Any, Any]], failed: dict[str, str],
                 now: datetime) -> None:
        """Messages the receiver did not apply: each backs off on its own (the first
        time a message is merely not acknowledged, with no reason given, it is due again
        at once: the receiver may only be waiting for something), and is recorded."""
        t = self._table
        for row in rows:
            reason = failed.get(row.message_id)
            attempts = row.attempts + 1
            if reason is None and row.attempts == 0:
                next_at = now
            else:
                next_at = now + backoff(attempts, BACKOFF_BASE, BACKOFF_CAP)
            error = reason or NOT_APPLIED
            conn.execute(update(t).where(t.c.seq == row.seq).values(
                attempts=attempts, next_attempt_at=next_at, last_error=error[:500]))
            self.job.unit_failed(f"message/{row.message_id}", error, attempts=attempts,
                                 next_attempt_at=next_at,
                                 code=error.split(":", 1)[0] if reason else "not_applied")
        if rows:
            self.stats.last_error = failed.get(rows[-1].message_id) or NOT_APPLIED

    def failing(self, limit: int = 20) -> list[dict[str, object]]:
        """Unsent messages that failed at least once, newest failure first (from the rows:
        what every relay process saw)."""
        t = self._table
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.message_id, t.c.type, t.c.attempts, t.c.next_attempt_at,
                       t.c.last_error, t.c.created_at)
                .where(t.c.sent_at.is_(None), t.c.last_error.is_not(None))
                .order_by(t.c.seq).limit(limit)).all()
        return [{"message_id": r.message_id, "type": r.type, "attempts": r.attempts,
                 "next_attempt_at": r.next_attempt_at.isoformat(),
                 "last_error": r.last_error, "created_at": r.created_at.isoformat()}
                for r in rows]

    def backlog(self) -> tuple[int, datetime | None]:
        """Pending messages and the creation time of the oldest (for metrics)."""
        t = self._table
        with self._engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))).one()
        return int(count), oldest
