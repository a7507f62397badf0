"""Transactional outbox and its relay, used by both sides on their own tables.

A message is written in the same transaction as the change it announces; the
relay delivers pending messages in order, at least once, and marks them sent
when the receiver acknowledges them. Receivers apply each id at most once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from accrual.clock import Clock
from accrual.contract.messages import Envelope

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=1)
BACKOFF_CAP = timedelta(minutes=10)


def enqueue(conn: Connection, table: Table, envelopes: Sequence[Envelope], now: datetime) -> None:
    if not envelopes:
        return
    conn.execute(insert(table), [
        {"message_id": e.id, "type": e.type, "body": e.model_dump_json(), "created_at": now,
         "attempts": 0, "next_attempt_at": now}
        for e in envelopes
    ])


@dataclass
class RelayStats:
    delivered: int = 0
    failed_batches: int = 0
    last_error: str | None = None


class Relay:
    """Drains one outbox into one receiver (`deliver` returns the ids it applied)."""

    def __init__(self, engine: Engine, table: Table, deliver: Callable[[Sequence[Envelope]], list[str]],
                 clock: Clock, batch_size: int = 500) -> None:
        self._engine = engine
        self._table = table
        self._deliver = deliver
        self._clock = clock
        self._batch_size = batch_size
        self.stats = RelayStats()

    def drain(self, max_batches: int = 1000) -> int:
        """Deliver what is due now; returns how many messages were acknowledged."""
        delivered = 0
        for _ in range(max_batches):
            sent = self._one_batch()
            if sent <= 0:
                break
            delivered += sent
        return delivered

    def _one_batch(self) -> int:
        t = self._table
        now = self._clock.now()
        with self._engine.begin() as conn:
            query = (select(t.c.seq, t.c.message_id, t.c.body, t.c.attempts)
                     .where(t.c.sent_at.is_(None), t.c.next_attempt_at <= now)
                     .order_by(t.c.seq).limit(self._batch_size))
            if conn.dialect.name == "postgresql":
                # Several relays may run; each takes its own rows.
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            if not rows:
                return 0
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
                return -1
            acked = [row.seq for row in rows if row.message_id in applied]
            if acked:
                conn.execute(update(t).where(t.c.seq.in_(acked)).values(
                    sent_at=now, attempts=t.c.attempts + 1, last_error=None))
            self.stats.delivered += len(acked)
            return len(acked)

    def backlog(self) -> tuple[int, datetime | None]:
        """Pending messages and the creation time of the oldest (for metrics)."""
        t = self._table
        with self._engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))).one()
        return int(count), oldest
