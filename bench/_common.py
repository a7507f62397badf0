"""Shared pieces of the benchmarks: throw-away PostgreSQL databases, a runtime on them,
bulk set-up of tenants, progress lines and the JSON summary.

Set-up is never what is measured: tenants beyond the few registered through the
service are written straight into both databases with COPY.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from accrual.app import Runtime, build  # noqa: E402
from accrual.clock import ManualClock  # noqa: E402
from accrual.settings import Settings  # noqa: E402

PG_URL = os.environ.get("ACCRUAL_BENCH_PG_URL",
                        os.environ.get("ACCRUAL_TEST_PG_URL",
                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
RESULTS = ROOT / "bench" / "results"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# 10:00 in Shanghai on 2026-11-26: the measured day, 2026-11-25, is over and closable.
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)
DAY = date(2026, 11, 25)
ADMIN = "op-bench-token"
_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:8.1f}s] {message}", flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@contextmanager
def pg_databases(label: str) -> Iterator[tuple[str, str]]:
    """Two fresh databases (console, billing) named accrual_bench_*; dropped at the end."""
    import psycopg

    admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    run = uuid.uuid4().hex[:8]
    names = (f"accrual_bench_{label}_{run}_console", f"accrual_bench_{label}_{run}_billing")
    for name in names:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def settings_for(urls: tuple[str, str], data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, admin_token=ADMIN, scheduler=False, seed_demo=False,
                    site="cn1", site_group="cn", currency="CNY",
                    console_db_url=urls[0], billing_db_url=urls[1])


def make_runtime(urls: tuple[str, str], data_dir: Path | None = None,
                 clock: ManualClock | None = None) -> Runtime:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="accrual-bench-"))
    runtime = build(settings_for(urls, data_dir), clock=clock or ManualClock(NOW))
    runtime.migrate()
    return runtime


def dispose(runtime: Runtime) -> None:
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()


def copy_rows(engine: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into a table in one transaction (set-up only)."""
    count = 0
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
    return count


def analyze(engine: Any, *tables: str) -> None:
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        for table in tables:
            raw.execute(f"ANALYZE {table}")


def bulk_tenants(runtime: Runtime, count: int, *, prefix: str = "bw",
                 workspaces_per_account: int = 1) -> list[str]:
    """``count`` commercial workspaces, each bound to a billing account, written directly.

    Console: workspaces rows. Billing center: active accounts (a dummy password
    hash: nobody logs in), their cash and prepaid ledger accounts, known
    workspaces and bindings effective from long before the measured day.
    """
    now = datetime.now(UTC)
    ids = [f"{prefix}{i:010d}" for i in range(count)]
    accounts = [f"{prefix}a{i:09d}" for i in range((count + workspaces_per_account - 1)
                                                   // workspaces_per_account)]
    owner_of = [accounts[i // workspaces_per_account] for i in range(count)]
    since = date(2026, 1, 1)
    copy_rows(runtime.console.engine, "workspaces",
              ["id", "name", "site", "language", "plan", "status", "owner_account_id",
               "billing_account_id", "settlement_method", "created_at"],
              ((w, f"bench {w}", "cn1", "en", "commercial", "active", "bench-owner", a,
                "billing_center", now) for w, a in zip(ids, owner_of, strict=True)))
    engine = runtime.billing.engine
    copy_rows(engine, "billing_accounts",
              ["id", "username", "email", "password_hash", "language", "currency", "status",
               "created_at", "activated_at"],
              ((a, a, f"{a}@bench.invalid", "x", "en", "CNY", "active", now, now)
               for a in accounts))
    copy_rows(engine, "ledger_accounts", ["owner", "kind", "currency", "balance_minor"],
              ((a, kind, "CNY", 0) for a in accounts for kind in ("cash", "prepaid")))
    copy_rows(engine, "known_workspaces",
              ["workspace_id", "site", "name", "owner_email", "language", "created_at"],
              ((w, "cn1", f"bench {w}", "owner@bench.invalid", "en", now) for w in ids))
    copy_rows(engine, "bindings",
              ["workspace_id", "account_id", "settlement_method", "effective_from", "created_at"],
              ((w, a, "billing_center", since, now) for w, a in zip(ids, owner_of, strict=True)))
    analyze(runtime.console.engine, "workspaces")
    analyze(engine, "billing_accounts", "ledger_accounts", "known_workspaces", "bindings")
    return ids


def register_few(runtime: Runtime, count: int) -> list[str]:
    """Tenants through the real registration (argon2: keep ``count`` small)."""
    ids = []
    for i in range(count):
        reg = runtime.console.accounts.register(
            f"bench{i}@example.com", "correct horse battery", f"bench{i}", f"Bench {i}", "en")
        ids.append(reg.workspace_id)
    runtime.console.relay.drain()
    return ids


def environment() -> dict[str, Any]:
    import psycopg
    import sqlalchemy

    with psycopg.connect(PG_URL) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                    for name in ("shared_buffers", "synchronous_commit", "max_wal_size")}
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                                    capture_output=True, text=True, check=False).stdout.strip())
    except OSError:
        commit, dirty = "", False
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "postgresql": server, "postgresql_settings": settings,
            "sqlalchemy": sqlalchemy.__version__, "psycopg": psycopg.__version__,
            "git_commit": commit, "src_modified": dirty}


def write_summary(name: str, summary: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    text = json.dumps(summary, indent=2, default=str)
    path.write_text(text + "\n")
    (RESULTS / f"{name}-latest.json").write_text(text + "\n")
    print(text)
    log(f"summary written to {path.relative_to(ROOT)}")
    return path
