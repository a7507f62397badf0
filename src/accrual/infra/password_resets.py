"""Forgotten passwords: a one-time code mailed to the account's address, in a side's own
database (each side declares the table with :func:`password_resets_table`).

A code, not a link: a link would be built from the request's Host header, which a
stranger chooses; the code goes with the page the person is already on. The code is
10 characters of a 30-letter alphabet (about 49 bits), valid for 30 minutes, good for
5 tries, and only its hash is kept. An account gets at most 3 codes an hour, so a
stranger cannot flood its mailbox. Whether an account exists is never told: asking
for a code always answers alike, and a code for an unknown account is simply wrong.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from accrual.clock import Clock
from accrual.infra.db import UtcDateTime

CODE_TTL = timedelta(minutes=30)
MAX_TRIES = 5
PER_HOUR = 3
# No 0/O, 1/I/L, U: nothing to misread when typed from a mail.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10


def password_resets_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("account_id", String(32), nullable=False, index=True),
        Column("code_hash", String(64), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("expires_at", UtcDateTime(), nullable=False),
        Column("tries", Integer, nullable=False),
        Column("used_at", UtcDateTime()),
    )


def normal_code(code: object) -> str:
    """The code as typed, without spaces or dashes, in capitals."""
    if not isinstance(code, str):
        return ""
    return "".join(char for char in code.upper() if char not in " -")[:64]


def _hash(account_id: str, code: str) -> str:
    return hashlib.sha256(f"{account_id}:{code}".encode()).hexdigest()


class PasswordResets:
    def __init__(self, engine: Engine, table: Table, clock: Clock) -> None:
        self.engine = engine
        self.table = table
        self.clock = clock

    def issue(self, account_id: str) -> str | None:
        """A new code for the account (shown as ``XXXXX-XXXXX``), or None when it had its
        codes for this hour already."""
        r, now = self.table, self.clock.now()
        with self.engine.begin() as conn:
            recent = conn.execute(select(func.count()).select_from(r).where(
                r.c.account_id == account_id,
                r.c.created_at > now - timedelta(hours=1))).scalar_one()
            if recent >= PER_HOUR:
                return None
            code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
            conn.execute(insert(r).values(account_id=account_id, code_hash=_hash(account_id, code),
                                          created_at=now, expires_at=now + CODE_TTL, tries=0))
        return f"{code[:5]}-{code[5:]}"

    def redeem(self, account_id: str, code: object) -> bool:
        """Whether ``code`` is the account's newest live code; a right one is used up, a
        wrong one costs a try. The caller sets the password in its own transaction after."""
        r, now = self.table, self.clock.now()
        typed = normal_code(code)
        with self.engine.begin() as conn:
            row = conn.execute(select(r).where(
                r.c.account_id == account_id, r.c.used_at.is_(None), r.c.expires_at > now,
                r.c.tries < MAX_TRIES).order_by(r.c.id.desc()).limit(1)).first()
            if row is None:
                return False
            if not secrets.compare_digest(row.code_hash, _hash(account_id, typed)):
                conn.execute(update(r).where(r.c.id == row.id).values(tries=row.tries + 1))
                return False
            used = conn.execute(update(r).where(r.c.id == row.id, r.c.used_at.is_(None))
                                .values(used_at=now)).rowcount
            return bool(used)
