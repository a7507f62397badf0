"""Writing many rows at once, inside the caller's transaction.

On PostgreSQL rows go in by binary COPY (one round trip, no SQL text per row);
elsewhere by one executemany of a single INSERT. Values must already be what
the column stores: aware datetimes for timestamp columns (they are written as
``timestamptz``), dates, ints and strings; ``None`` for NULL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    any_,
    bindparam,
    insert,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from accrual.infra.db import UtcDateTime

# SQLAlchemy column type → the PostgreSQL type COPY BINARY writes it as.
_PG_TYPES: tuple[tuple[type, str], ...] = (
    (BigInteger, "int8"), (Integer, "int4"), (String, "text"), (Text, "text"),
    (Date, "date"), (UtcDateTime, "timestamptz"), (DateTime, "timestamptz"),
)


def _pg_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    for sa_type, pg_type in _PG_TYPES:
        if isinstance(kind, sa_type):
            return pg_type
    raise TypeError(f"no COPY type for {table.name}.{column} ({kind!r})")


def insert_rows(conn: Connection, table: Table, columns: Sequence[str],
                rows: Iterable[Sequence[object]]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``."""
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        types = [_pg_type(table, c) for c in columns]
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        try:
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)
        except psycopg.Error as error:
            # As SQLAlchemy would raise it (IntegrityError, OperationalError, …), so that
            # callers such as in_transaction recognise races to retry.
            raise DBAPIError.instance(statement, None, error, psycopg.Error) from error
        return
    params = [dict(zip(columns, row, strict=True)) for row in rows]
    if params:
        conn.execute(insert(table), params)


def among(conn: Connection, column: ColumnElement[Any], values: Iterable[object],
          array_type: TypeEngine[Any] | None = None) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL one array parameter instead of one per value
    (thousands of placeholders make the driver's query parsing the slow part)."""
    values = sorted(set(values))  # type: ignore[type-var]  # ids of one column: mutually comparable
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values,
                                        type_=postgresql.ARRAY(array_type or String())))
    return column.in_(values)
