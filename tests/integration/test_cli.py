"""The `accrual` command end to end on SQLite files in a temporary data directory:
migrate, close a day, re-rate it, list prices (the wall clock: the CLI has no other)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from accrual.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCRUAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCRUAL_SETTINGS_FILE", str(tmp_path / "none.env"))
    monkeypatch.setenv("ACCRUAL_SCHEDULER", "false")
    monkeypatch.setenv("ACCRUAL_SEED_DEMO", "false")
    for name in ("ACCRUAL_CONSOLE_DB_URL", "ACCRUAL_BILLING_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_migrate_close_day_and_rerate_from_the_command_line(data_dir: Path) -> None:
    assert "up to date" in _invoke("migrate")
    assert (data_dir / "console.sqlite3").exists() and (data_dir / "billing.sqlite3").exists()
    yesterday = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=1)).date().isoformat()
    closed = _invoke("close-day", yesterday)
    assert closed.startswith(f"{yesterday}: 0 charges, 0 adjustments")
    assert "(already closed)" in _invoke("close-day", yesterday)
    rerated = _invoke("rerate", "--from", yesterday, "--to", yesterday,
                      "--reason", "price fix", "--actor", "ops")
    assert "re-rate #1: 1 closed days, 0 adjustments, 0.00 in all" in rerated


def test_prices_lists_the_price_book(data_dir: Path) -> None:
    listed = _invoke("prices", "--currency", "CNY", "--site-group", "cn")
    assert "CNY" in listed and "USD" not in listed
