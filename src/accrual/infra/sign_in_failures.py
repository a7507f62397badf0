"""Failed sign-ins counted in a side's own database (the rules: ``accrual.infra.throttle``).

Each side declares the table with :func:`sign_in_failures_table` and guards its login
with a :class:`SignInThrottle`. Keys are stored as SHA-256 of the scope and the key,
so the table holds neither e-mails nor addresses, and every key has the same size.

Counting a failure reads the row under a lock (``FOR UPDATE``; SQLite's write
transactions are serial anyway), so concurrent failures on one key all count.
Requests checked at the same instant may all pass before the first failure is
written: the limit holds up to the number of concurrent requests. Rows past
``keep_until`` are purged on the way, at most once a minute per process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from accrual.clock import Clock
from accrual.contract.errors import TooManyAttempts
from accrual.infra.db import UtcDateTime
from accrual.infra.throttle import (
    FailureCount,
    Scope,
    ThrottlePolicy,
    address_key,
    after_failure,
    retry_after_s,
)

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(minutes=1)


def sign_in_failures_table(name: str, metadata: MetaData) -> Table:
    """A side's failed sign-ins, one row per account or client address that failed lately."""
    return Table(
        name, metadata,
        Column("key_hash", String(64), primary_key=True),  # SHA-256 of scope and key
        Column("scope", String(8), nullable=False),  # account | address
        Column("failures", Integer, nullable=False),
        Column("window_start", UtcDateTime(), nullable=False),
        Column("blocked_until", UtcDateTime()),
        Column("lockouts", Integer, nullable=False),
        Column("keep_until", UtcDateTime(), nullable=False, index=True),
    )


def _hash(scope: Scope, key: str) -> str:
    return hashlib.sha256(f"{scope}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


class SignInThrottle:
    """``check`` before the password is looked at; then ``failed`` or ``succeeded``."""

    def __init__(self, engine: Engine, table: Table, clock: Clock, policy: ThrottlePolicy) -> None:
        self.engine = engine
        self.table = table
        self.clock = clock
        self.policy = policy
        self._purged_at: datetime | None = None
        self._lock = threading.Lock()

    def _keys(self, identifier: str, client_address: str | None) -> list[tuple[Scope, str]]:
        keys: list[tuple[Scope, str]] = [("account", identifier)]
        address = address_key(client_address)
        if address is not None:
            keys.append(("address", address))
        return keys

    def check(self, identifier: str, client_address: str | None) -> None:
        """Raise :class:`TooManyAttempts` while the account or the address is locked out."""
        now = self.clock.now()
        hashes = [_hash(scope, key) for scope, key in self._keys(identifier, client_address)]
        f = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.c.blocked_until).where(
                f.c.key_hash.in_(hashes), f.c.blocked_until > now)).scalars().all()
        waits = [wait for until in rows if (wait := retry_after_s(until, now)) is not None]
        if waits:
            raise TooManyAttempts(max(waits))

    def failed(self, identifier: str, client_address: str | None) -> None:
        """Count a failed sign-in against the account and the address."""
        now = self.clock.now()
        self._purge(now)
        for scope, key in self._keys(identifier, client_address):
            for attempt in (1, 2):
                try:
                    with self.engine.begin() as conn:
                        self._count(conn, scope, _hash(scope, key), now)
                    break
                except IntegrityError:
                    # A concurrent first failure inserted the row: count on it.
                    if attempt == 2:
                        raise

    def succeeded(self, identifier: str) -> None:
        """A successful sign-in clears the account's count."""
        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(
                self.table.c.key_hash == _hash("account", identifier)))

    def _count(self, conn: Connection, scope: Scope, key_hash: str, now: datetime) -> None:
        f = self.table
        row = conn.execute(select(f).where(f.c.key_hash == key_hash).with_for_update()).first()
        before = None if row is None else FailureCount(
            row.failures, row.window_start, row.blocked_until, row.lockouts, row.keep_until)
        after = after_failure(before, now, scope, self.policy)
        values = {"failures": after.failures, "window_start": after.window_start,
                  "blocked_until": after.blocked_until, "lockouts": after.lockouts,
                  "keep_until": after.keep_until}
        if row is None:
            conn.execute(insert(f).values(key_hash=key_hash, scope=scope, **values))
        else:
            conn.execute(update(f).where(f.c.key_hash == key_hash).values(**values))
        if after.failures == 0 and after.blocked_until is not None:  # the limit is reached
            log.warning("sign-in: %s %s… locked out until %s after %d failures",
                        scope, key_hash[:12], after.blocked_until.isoformat(),
                        self.policy.limit(scope))

    def _purge(self, now: datetime) -> None:
        with self._lock:
            if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
                return
            self._purged_at = now
        with self.engine.begin() as conn:
            purged = conn.execute(delete(self.table).where(self.table.c.keep_until < now)).rowcount
        if purged:
            log.debug("sign-in failures: %d expired row(s) purged", purged)
