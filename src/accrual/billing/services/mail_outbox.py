"""The billing center's mail outbox: mails queued with the change that decided them,
sent afterwards by :meth:`MailOutbox.send_due`, retried with backoff.

A mail is queued in the transaction of its event, so nothing is mailed for a change
that was rolled back; its ``dedup_key`` (one per event and recipient) makes queuing
it again, e.g. by a repeated or concurrent job, a no-op.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from accrual.billing.adapters import tables as t
from accrual.billing.mail_texts import render
from accrual.clock import Clock
from accrual.infra.jobs import Job
from accrual.infra.mail import Mailer, MailError

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=2)
# After this many failed attempts a mail is left unsent (the operator view shows it).
MAX_ATTEMPTS = 12
BATCH = 200
# How long a sender holds a mail it is sending before another may take it.
CLAIM = timedelta(minutes=5)


def recipient_key(address: str) -> str:
    """A short stand-in for an address in dedup keys (addresses may be 320 characters)."""
    return hashlib.sha256(address.lower().encode()).hexdigest()[:24]


def queue(conn: Connection, *, template: str, language: str, recipient: str,
          values: dict[str, object], dedup_key: str, now: datetime) -> bool:
    """Queue one mail unless one with ``dedup_key`` was queued before; True if queued."""
    m = t.mail_outbox
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    inserted = conn.execute(dialect_insert(m).values(
        template=template, language=language, recipient=recipient,
        values_json=json.dumps(values, ensure_ascii=False, sort_keys=True),
        dedup_key=dedup_key, created_at=now, attempts=0, next_attempt_at=now)
        .on_conflict_do_nothing(index_elements=[m.c.dedup_key]))
    return bool(inserted.rowcount)


def queue_many(conn: Connection, queued: list[dict[str, object]], now: datetime) -> None:
    """:func:`queue` for many mails (dicts of its keyword arguments but ``now``)."""
    m = t.mail_outbox
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [{"template": q["template"], "language": q["language"], "recipient": q["recipient"],
             "values_json": json.dumps(q["values"], ensure_ascii=False, sort_keys=True),
             "dedup_key": q["dedup_key"], "created_at": now, "attempts": 0,
             "next_attempt_at": now} for q in queued]
    if rows:
        # executemany: the driver batches it, and the statement is compiled once (a
        # literal multi-row VALUES is compiled anew for every size, slowly).
        # (RETURNING lets it send them in a few multi-row statements, not one by one.)
        conn.execute(dialect_insert(m).on_conflict_do_nothing(index_elements=[m.c.dedup_key])
                     .returning(m.c.id), rows).all()


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    m = t.mail_outbox
    return (m.c.sent_at.is_(None), m.c.next_attempt_at <= now, m.c.attempts < MAX_ATTEMPTS)


class MailOutbox:
    def __init__(self, engine: Engine, clock: Clock, mailer: Mailer) -> None:
        self.engine = engine
        self.clock = clock
        self.mailer = mailer
        self.job = Job("billing mails", clock)

    def send_due(self, limit: int = BATCH) -> dict[str, int]:
        """Send the mails that are due, oldest first: ``{"sent": n, "failed": n}``.

        Each mail is first claimed for a while (its next attempt moved past the send),
        so that concurrent senders never send it twice, then sent with no transaction
        open (SQLite would otherwise hold its write lock through the SMTP exchange),
        then marked. A crash after the claim sends it again once the claim lapses.
        """
        m = t.mail_outbox
        now = self.clock.now()
        with self.engine.connect() as conn:
            ids = list(conn.execute(select(m.c.id).where(*_due(now)).order_by(m.c.id)
                                    .limit(limit)).scalars())
        sent = failed = 0
        for mail_id in ids:
            unit = f"mail/{mail_id}"
            try:
                outcome, error = self._send_one(mail_id)
            except Exception as failure:
                # Anything else (a mailer raising something unexpected, a lost row): the
                # claim lapses and the mail is tried again; the others go on.
                log.exception("billing mail %s could not be sent", mail_id)
                self.job.unit_failed(unit, failure,
                                     next_attempt_at=self.clock.now() + CLAIM)
                failed += 1
                continue
            sent += outcome == "sent"
            failed += outcome == "failed"
            if outcome == "sent":
                self.job.unit_ok(unit)
            elif outcome == "failed" and error is not None:
                self.job.unit_failed(unit, error[0], code=error[1], attempts=error[2],
                                     next_attempt_at=error[3])
        return {"sent": sent, "failed": failed}

    def _send_one(self, mail_id: int
                  ) -> tuple[str | None, tuple[str, str, int, datetime | None] | None]:
        m = t.mail_outbox
        now = self.clock.now()
        with self.engine.begin() as conn:
            claimed = conn.execute(update(m).where(m.c.id == mail_id, *_due(now))
                                   .values(next_attempt_at=now + CLAIM)).rowcount
            row = conn.execute(select(m).where(m.c.id == mail_id)).one() if claimed else None
        if row is None:  # sent or claimed by another sender meanwhile
            return None, None
        error: str | None = None
        code = "MailError"
        attempts = row.attempts + 1
        try:
            mail = render(row.template, row.language, row.recipient, **json.loads(row.values_json))
        except Exception as failure:  # a bug in a template or its values: do not retry it
            log.exception("billing mail %s (%s) cannot be rendered", mail_id, row.template)
            error, attempts = f"cannot render: {failure}", MAX_ATTEMPTS
            code = "cannot_render"
        else:
            try:
                self.mailer.send(mail)
            except Exception as failure:  # noqa: BLE001 (this mail only; retried with backoff)
                error = str(failure) or type(failure).__name__
                code = "MailError" if isinstance(failure, MailError) else type(failure).__name__
                log.warning("billing mail %s (%s to %s) failed, attempt %d: %s", mail_id,
                            row.template, row.recipient, attempts, failure)
        now = self.clock.now()
        with self.engine.begin() as conn:
            if error is None:
                conn.execute(update(m).where(m.c.id == mail_id).values(
                    sent_at=now, attempts=attempts, last_error=None))
                return "sent", None
            delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(row.attempts, 16)))
            delay = delay * (0.5 + random.random() / 2)
            conn.execute(update(m).where(m.c.id == mail_id).values(
                attempts=attempts, next_attempt_at=now + delay, last_error=error[:500]))
            return "failed", (error, code, attempts,
                              now + delay if attempts < MAX_ATTEMPTS else None)

    def backlog(self) -> dict[str, object]:
        """Unsent mails, those given up on, and the oldest unsent one (for operators)."""
        m = t.mail_outbox
        with self.engine.connect() as conn:
            pending, oldest = conn.execute(
                select(func.count(), func.min(m.c.created_at)).where(
                    m.c.sent_at.is_(None), m.c.attempts < MAX_ATTEMPTS)).one()
            given_up = conn.execute(select(func.count()).where(
                m.c.sent_at.is_(None), m.c.attempts >= MAX_ATTEMPTS)).scalar_one()
            errors = conn.execute(
                select(m.c.id, m.c.template, m.c.recipient, m.c.attempts, m.c.last_error,
                       m.c.next_attempt_at)
                .where(m.c.sent_at.is_(None), m.c.last_error.is_not(None))
                .order_by(m.c.id.desc()).limit(20)).all()
        return {"pending": int(pending), "given_up": int(given_up),
                "oldest": oldest.isoformat() if oldest else None,
                "failing": [{"id": r.id, "template": r.template, "recipient": r.recipient,
                             "attempts": r.attempts, "last_error": r.last_error,
                             "next_attempt_at": r.next_attempt_at.isoformat()}
                            for r in errors]}
