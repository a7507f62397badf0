"""Test fixtures: a runtime on SQLite files, or on fresh PostgreSQL databases.

`ACCRUAL_TEST_DB=postgresql` runs the database tests (marked `db`) against
PostgreSQL at `ACCRUAL_TEST_PG_URL`; two databases are created for the run
and dropped after it. An unreachable server ends the run with an error: it
never turns into skipped tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime, build
from accrual.clock import ManualClock
from accrual.contract.ports import BillingCenterPort
from accrual.settings import Settings

# The local SMTP server and a runtime that mails to it.
pytest_plugins = ["tests.smtp"]

BACKEND = os.environ.get("ACCRUAL_TEST_DB", "sqlite")
PG_URL = os.environ.get("ACCRUAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SHANGHAI = ZoneInfo("Asia/Shanghai")
ADMIN = "op-test-token"
# 10:00 in Shanghai on 2026-11-26: "yesterday" is 2026-11-25.
START = datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)


def _pg_admin_url() -> str:
    return PG_URL


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[tuple[str, str] | None]:
    if BACKEND != "postgresql":
        yield None
        return
    import psycopg

    try:
        admin = psycopg.connect(_pg_admin_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.exit(f"PostgreSQL at {PG_URL} is unreachable: {error}", returncode=3)
    run = uuid.uuid4().hex[:10]
    names = (f"accrual_test_{run}_console", f"accrual_test_{run}_billing")
    for name in names:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield (f"{base}/{names[0]}", f"{base}/{names[1]}")
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _truncate_all(runtime: Runtime) -> None:
    from sqlalchemy import text

    from accrual.billing.adapters.tables import metadata as billing_metadata
    from accrual.console.adapters.tables import metadata as console_metadata

    for engine, metadata in ((runtime.console.engine, console_metadata),
                             (runtime.billing.engine, billing_metadata)):
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def make_runtime(tmp_path: Path, pg: tuple[str, str] | None, clock: ManualClock,
                 wrap_billing_port: Callable[[BillingCenterPort], BillingCenterPort] | None = None,
                 **overrides: object) -> Runtime:
    values: dict[str, object] = {
        "data_dir": tmp_path, "admin_token": ADMIN, "scheduler": False, "seed_demo": False,
        "site": "cn1", "site_group": "cn", "currency": "CNY"}
    if pg is not None:
        values["console_db_url"], values["billing_db_url"] = pg
    values.update(overrides)
    runtime = build(Settings(**values), clock=clock,  # type: ignore[arg-type]
                    wrap_billing_port=wrap_billing_port)
    runtime.migrate()
    if pg is not None:
        _truncate_all(runtime)
        runtime.migrate()  # re-opens the center's own ledger accounts
    return runtime


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def runtime(tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path, pg_databases, clock)
    yield runtime
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(runtime.app) as test_client:
        yield test_client


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # Anything built on a database (directly or through `runtime`) runs in both passes.
        if {"runtime", "pg_databases"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
