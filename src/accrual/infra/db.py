"""Technical helpers both sides use for their own, separate databases.

Holds no tables and no rules: each side declares its own schema and keeps its
own Alembic history; this only opens engines and runs those histories.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    DateTime,
    Dialect,
    Engine,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.exc import IntegrityError, OperationalError


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings Accrual relies on for each backend."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None},
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        # Every transaction takes the write lock up front: a deferred
        # transaction that reads and then writes can fail at once with
        # SQLITE_BUSY instead of waiting, which would turn a busy moment into
        # an error for the caller.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def upgrade(engine: Engine, migrations_dir: Path, version_table: str) -> None:
    """Bring a database to the newest revision of one side's migration history."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out on every backend; stored as UTC.

    SQLite keeps no offset, so values are normalised to UTC on the way in and
    marked UTC on the way out; naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


T = TypeVar("T")
# PostgreSQL: serialization failure, deadlock; and a unique violation when the
# key was chosen after a read (two racing first writers of one idempotency key).
_RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}


class RetryStats:
    """How often :func:`in_transaction` retried, by SQLSTATE; safe to share between threads.

    ``counts()`` covers every thread since the last ``reset()``. ``this_thread()`` counts
    the calling thread's retries since it started (never reset), so a caller can take the
    difference around one operation to learn that operation's retries.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._local = threading.local()

    def record(self, sqlstate: str) -> None:
        with self._lock:
            self._counts[sqlstate] += 1
        mine: Counter[str] | None = getattr(self._local, "counts", None)
        if mine is None:
            mine = self._local.counts = Counter()
        mine[sqlstate] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def this_thread(self) -> dict[str, int]:
        return dict(getattr(self._local, "counts", None) or {})

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


RETRIES = RetryStats()


def in_transaction(engine: Engine, work: Callable[[Connection], T], attempts: int = 5) -> T:
    """Run ``work`` in one transaction, retrying races a bounded number of times."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                return work(connection)
        except (IntegrityError, OperationalError) as error:
            sqlstate = getattr(error.orig, "sqlstate", None)
            if sqlstate not in _RETRYABLE_SQLSTATES or attempt == attempts:
                raise
            RETRIES.record(sqlstate)
            time.sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311 (jitter only)
    raise AssertionError("unreachable")
