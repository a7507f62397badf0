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
    BigInteger,
    Connection,
    DateTime,
    Dialect,
    Engine,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


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
            dbapi_connection.create_aggregate(_SQLITE_EXACT_SUM, 1, _ExactSum)

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
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a table (new table, copy, drop, rename); SQLite
            # lets it drop a table other rows refer to only with foreign keys off, which
            # it allows outside a transaction only. They are checked before the commit.
            connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]  # open here
                "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]  # open here
                    "PRAGMA foreign_keys=ON")


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


class ExactInteger(TypeDecorator[int]):
    """An integer result of any size, read as a Python ``int`` (never a float)."""

    impl = BigInteger
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"an integer sum came back as the float {value!r}")
        return int(value)


class exact_sum(FunctionElement[int]):
    """``SUM`` of an integer column, exact at any size, as a Python ``int``.

    PostgreSQL's ``SUM(bigint)`` is ``numeric`` and exact already. SQLite's ``SUM``
    raises "integer overflow" past 64 bits (and ``TOTAL`` is a float), so there it is
    an aggregate registered on every connection (:func:`make_engine`) that adds Python
    ints and hands back a decimal string when the total no longer fits in 64 bits.
    Compare it with ``=``/``!=`` only: a string total is never equal to an integer,
    which is right, since a stored integer fits in 64 bits."""

    type = ExactInteger()
    name = "exact_sum"
    inherit_cache = True


_SQLITE_EXACT_SUM = "accrual_exact_sum"


@compiles(exact_sum)
def _exact_sum_default(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(exact_sum, "sqlite")
def _exact_sum_sqlite(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{_SQLITE_EXACT_SUM}({compiler.process(element.clauses, **kw)})"


class _ExactSum:
    """The SQLite side of :class:`exact_sum`."""

    def __init__(self) -> None:
        self.total = 0
        self.seen = False

    def step(self, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, int):
            raise TypeError(f"exact_sum of a non-integer {value!r}")
        self.total += value
        self.seen = True

    def finalize(self) -> int | str | None:
        if not self.seen:
            return None  # as SUM: NULL over no rows
        if -(2**63) <= self.total < 2**63:
            return self.total
        return str(self.total)


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
            time.sleep(random.uniform(0, 0.01 * attempt))
    raise AssertionError("unreachable")
