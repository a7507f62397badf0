"""Test fixtures: a runtime on SQLite files, or on fresh PostgreSQL databases.

`ACCRUAL_TEST_DB=postgresql` runs the database tests (marked `db`) against
PostgreSQL at `ACCRUAL_TEST_PG_URL`; two databases are created for the run
(for each xdist worker) and dropped after it. An unreachable server ends the
run with an error: it never turns into skipped tests.

Every test starts from freshly migrated databases without running the
migrations again: on SQLite it gets a copy of files migrated once per worker,
on PostgreSQL the rows the previous test left are deleted (see
``_reset_postgres``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from accrual.app import Runtime, build
from accrual.clock import ManualClock
from accrual.contract.ports import BillingCenterPort
from accrual.infra import credentials
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
def pg_database_settings() -> dict[str, str]:
    """Server settings for the test databases only: a commit does not wait for the
    disk (a crashed test server loses nothing anyone needs, and a test commits often)."""
    return {"synchronous_commit": "off"}


@pytest.fixture(scope="session")
def pg_databases(pg_database_settings: dict[str, str]) -> Iterator[tuple[str, str] | None]:
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
        for setting, value in pg_database_settings.items():
            admin.execute(f'ALTER DATABASE "{name}" SET {setting} = {value}')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield (f"{base}/{names[0]}", f"{base}/{names[1]}")
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# Where each worker keeps its migrated SQLite files (see `sqlite_templates`).
_template_root: Path | None = None
_SQLITE_FILES = ("console.sqlite3", "billing.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A directory for this worker's migrated SQLite templates, made on first use."""
    global _template_root
    _template_root = tmp_path_factory.mktemp("migrated")
    yield
    _template_root = None


def _sqlite_template(settings: Settings) -> Path:
    """Both SQLite files migrated once; per currency, the one setting migrating reads
    (the center opens its own ledger accounts in it)."""
    assert _template_root is not None
    path = _template_root / settings.currency
    if not path.exists():
        building = path.with_name(path.name + ".building")
        runtime = build(settings.model_copy(update={"data_dir": building}))
        try:
            runtime.migrate()
        finally:
            runtime.console.engine.dispose()
            runtime.billing.engine.dispose()
        # The last connection closed checkpoints the write-ahead log into the file.
        assert not any(building.glob("*-wal")), "a template kept its write-ahead log"
        building.rename(path)
    return path


def _copy_sqlite_template(settings: Settings) -> bool:
    """Start the test's SQLite files as copies of the migrated template: a file copy
    costs a millisecond, migrating a few hundred. False when that does not apply
    (other database URLs, no template directory, or files a test already made)."""
    if settings.console_db_url or settings.billing_db_url or _template_root is None:
        return False
    targets = [settings.data_dir / name for name in _SQLITE_FILES]
    if any(target.exists() for target in targets):
        return False
    template = _sqlite_template(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for name, target in zip(_SQLITE_FILES, targets, strict=True):
        shutil.copyfile(template / name, target)
    return True


@cache
def _migration_heads() -> dict[str, str | None]:
    from alembic.script import ScriptDirectory

    from accrual.billing.wiring import MIGRATIONS as BILLING_MIGRATIONS
    from accrual.console.wiring import MIGRATIONS as CONSOLE_MIGRATIONS

    return {"alembic_version_console": ScriptDirectory(str(CONSOLE_MIGRATIONS)).get_current_head(),
            "alembic_version_billing": ScriptDirectory(str(BILLING_MIGRATIONS)).get_current_head()}


def _version(engine: Engine, table: str) -> str | None:
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass(:table)"), {"table": table}).scalar() is None:
            return None
        return conn.execute(text(f'SELECT version_num FROM "{table}"')).scalar()


@cache
def _empty_tables_sql(side: str) -> str:
    """One statement that empties a side's tables (children first) and restarts
    every sequence used since. DELETE of the few rows a test leaves is far cheaper
    than TRUNCATE, which makes new files for every table; tables without rows are
    not touched at all."""
    from accrual.billing.adapters.tables import metadata as billing_metadata
    from accrual.console.adapters.tables import metadata as console_metadata

    metadata = {"console": console_metadata, "billing": billing_metadata}[side]
    deletes = "\n".join(f'  IF EXISTS (SELECT 1 FROM "{table.name}") THEN DELETE FROM "{table.name}"; END IF;'
                        for table in reversed(metadata.sorted_tables))
    return f"""DO $$
DECLARE used record;
BEGIN
{deletes}
  FOR used IN SELECT schemaname, sequencename, start_value FROM pg_sequences
              WHERE last_value IS NOT NULL LOOP
    PERFORM setval(format('%I.%I', used.schemaname, used.sequencename), used.start_value, false);
  END LOOP;
END $$"""


def _reset_postgres(runtime: Runtime) -> None:
    """The databases as migrating fresh ones leaves them: schema at the newest
    revision, no rows but the center's own ledger accounts, sequences from the start.
    The migrations run only when a database is not at the newest revision (the
    worker's first test, or a test that stepped a schema back)."""
    sides = (("console", runtime.console.engine), ("billing", runtime.billing.engine))
    if any(_version(engine, f"alembic_version_{side}") != _migration_heads()[f"alembic_version_{side}"]
           for side, engine in sides):
        runtime.migrate()
    for side, engine in sides:
        with engine.begin() as conn:
            conn.execute(text(_empty_tables_sql(side)))
    runtime.billing.open_own_accounts()


def make_runtime(tmp_path: Path, pg: tuple[str, str] | None, clock: ManualClock,
                 wrap_billing_port: Callable[[BillingCenterPort], BillingCenterPort] | None = None,
                 **overrides: object) -> Runtime:
    values: dict[str, object] = {
        "data_dir": tmp_path, "admin_token": ADMIN, "scheduler": False, "seed_demo": False,
        "site": "cn1", "site_group": "cn", "currency": "CNY"}
    if pg is not None:
        values["console_db_url"], values["billing_db_url"] = pg
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    copied = pg is None and _copy_sqlite_template(settings)
    runtime = build(settings, clock=clock, wrap_billing_port=wrap_billing_port)
    if pg is not None:
        _reset_postgres(runtime)
    elif not copied:
        runtime.migrate()
    return runtime


@pytest.fixture(scope="session")
def password_hasher() -> PasswordHasher | None:
    """argon2id at its smallest cost: registering hashes a password on both sides and
    every login verifies one, about 0.1 s apiece at the production cost (seconds on a
    busy machine). Whether a password is accepted does not depend on the cost."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(password_hasher: PasswordHasher | None,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    if password_hasher is not None:
        monkeypatch.setattr(credentials, "_hasher", password_hasher)


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
