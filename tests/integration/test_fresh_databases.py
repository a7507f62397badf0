"""Each test's runtime starts from databases as freshly migrated ones are, whatever the
test before it left: SQLite files are copies of a migrated template, PostgreSQL
databases are emptied in place (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select, text

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.clock import ManualClock
from tests.conftest import make_runtime
from tests.helpers import register


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {name: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{name}"')).all()), key=repr)
                for name in sorted(inspect(conn).get_table_names())}


def _state(runtime: Runtime) -> tuple[dict[str, list[tuple[Any, ...]]], ...]:
    return _rows(runtime.console.engine), _rows(runtime.billing.engine)


def _newest_ledger_account(runtime: Runtime) -> int:
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.max(t.ledger_accounts.c.id))).scalar_one())


def _close(runtime: Runtime) -> None:
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


def test_a_runtime_after_another_starts_from_the_same_fresh_state(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    first = make_runtime(tmp_path / "first", pg_databases, clock)
    try:
        fresh = _state(first)
        # Only the center's own ledger accounts exist in freshly migrated databases.
        assert [name for side in fresh for name, rows in side.items()
                if rows and not name.startswith("alembic_version")] == ["ledger_accounts"]
        with TestClient(first.app) as client:
            register(client)
        newest_after_registering = _newest_ledger_account(first)
        assert _state(first) != fresh
    finally:
        _close(first)

    second = make_runtime(tmp_path / "second", pg_databases, clock)
    try:
        assert _state(second) == fresh
        with TestClient(second.app) as client:
            register(client)
        # Identifiers start over: the same registration gets the same ledger account ids.
        assert _newest_ledger_account(second) == newest_after_registering
    finally:
        _close(second)


def test_the_center_opens_its_own_accounts_in_the_runtimes_currency(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    for currency in ("USD", "CNY"):
        runtime = make_runtime(tmp_path / currency, pg_databases, clock, currency=currency)
        try:
            with runtime.billing.engine.connect() as conn:
                currencies = set(conn.execute(select(t.ledger_accounts.c.currency)).scalars())
            assert currencies == {currency}
        finally:
            _close(runtime)
