"""A 25-hour day in a zone with daylight saving: buckets, the day's statistics, the close."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from accrual.clock import ManualClock
from accrual.console.adapters import tables as t
from tests.conftest import make_runtime


def test_fall_back_day_in_new_york(tmp_path: Path, pg_databases: tuple[str, str] | None) -> None:
    clock = ManualClock(datetime(2026, 10, 31, 12, 0, tzinfo=UTC))
    runtime = make_runtime(tmp_path, pg_databases, clock, site="us1", site_group="intl",
                           currency="USD", timezone="America/New_York")
    try:
        console = runtime.console
        reg = console.accounts.register("ny@example.com", "correct horse battery", "nyc",
                                        "NYC", "en")
        clock.set(datetime(2026, 11, 2, 12, 0, tzinfo=UTC))
        # 2026-11-01 in New York runs 04:00Z → 05:00Z next day: 25 hours. 01:30 happens
        # twice (05:30Z in EDT, 06:30Z in EST): two buckets, one day.
        instants = ["2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z",
                    "2026-11-02T04:59:59Z", "2026-11-02T05:00:00Z"]
        result = console.ingestion.ingest([
            {"id": str(n), "workspace_id": reg.workspace_id, "item": "logs", "time": when,
             "quantity": "1000000", "retention_days": 3} for n, when in enumerate(instants)])
        assert result.accepted == 5
        with console.engine.connect() as conn:
            rows = conn.execute(select(t.usage_records.c.record_id, t.usage_records.c.day,
                                       t.usage_records.c.hour_start)
                                .order_by(t.usage_records.c.record_id)).all()
        assert [r.day.isoformat() for r in rows] == ["2026-11-01"] * 4 + ["2026-11-02"]
        assert [r.hour_start.isoformat() for r in rows][:4] == [
            "2026-11-01T04:00:00+00:00", "2026-11-01T05:00:00+00:00",
            "2026-11-01T06:00:00+00:00", "2026-11-02T04:00:00+00:00"]

        closed = console.day_close.close_day(datetime(2026, 11, 1).date())
        assert closed.charges == 1
        with console.engine.connect() as conn:
            detail = conn.execute(select(t.billing_details)).one()
        # 4 million logs at 3 days, USD/intl: 0.3 per million.
        assert (detail.quantity, detail.amount_minor, detail.currency) == ("4000000", 120, "USD")
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()
