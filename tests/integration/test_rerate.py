"""Re-rating after a price-book correction: only the differences, audited, settled."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime
from accrual.catalog import PriceBook
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from accrual.console.api.operator import rerate_json
from accrual.console.services.day_close import DayClose
from accrual.console.services.rerate import Rerates
from tests.conftest import SHANGHAI, START
from tests.helpers import OPERATOR, close_day, register, send_usage

DAY = "2026-11-25"


def corrected(book: PriceBook, item: str, tier: int, price: str) -> PriceBook:
    """The same book with the CNY/cn price of one item and tier corrected in place."""
    rows = [dataclasses.replace(r, unit_price=Decimal(price))
            if (r.currency, r.site_group, r.item, r.retention_days, r.book)
            == ("CNY", "cn", item, tier, "current")
            else r for r in book.rows]
    return PriceBook(rows)


def test_rerate_emits_only_deltas_with_an_audit_record(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = register(client)
    ws = reg["workspace_id"]
    clock.set(START)
    send_usage(client, reg["ingest_key"], [
        {"id": "l", "workspace_id": ws, "item": "logs", "time": f"{DAY}T10:00:00+08:00",
         "quantity": "3000000", "retention_days": 3},
        {"id": "t", "workspace_id": ws, "item": "trigger", "time": f"{DAY}T10:00:00+08:00",
         "quantity": "20000"}])
    close_day(client, DAY)  # logs 3.00 + trigger 2.00

    console = runtime.console
    book = corrected(console.book, "logs", 3, "0.8")
    rerates = Rerates(console.engine, clock, DayClose(console.engine, console.config, clock, book),
                      console.config.currency)
    seen: list[tuple[date, int]] = []
    result = rerate_json(rerates.run(
        date(2026, 11, 20), date(2026, 11, 26), reason="logs 3d was mistyped",
        actor="ops@example.com", progress=lambda d, n: seen.append((d, n))))
    assert seen == [(date(2026, 11, 25), 1)]  # only closed days are re-rated
    assert (result["days"], result["adjustments"], result["amount"]) == (1, 1, "-0.60")
    assert result["actor"] == "ops@example.com" and result["reason"] == "logs 3d was mistyped"

    with console.engine.connect() as conn:
        details = conn.execute(select(console_tables.billing_details)
                               .order_by(console_tables.billing_details.c.revision,
                                         console_tables.billing_details.c.item)).all()
    assert [(d.item, d.kind, d.quantity, d.unit_price, d.amount_minor) for d in details] == [
        ("logs", "charge", "3000000", "1", 300), ("trigger", "charge", "20000", "1", 200),
        ("logs", "adjustment", "0", "0.8", -60)]
    assert details[2].reason == "re-rate: logs 3d was mistyped"
    assert details[2].adjusts == details[0].id

    # Running it again finds nothing more to change; the history keeps both runs.
    again = rerate_json(rerates.run(date(2026, 11, 25), date(2026, 11, 25), reason="check",
                                    actor="ops@example.com"))
    assert again["adjustments"] == 0 and again["amount"] == "0.00"
    assert [h.reason for h in rerates.history()] == ["check", "logs 3d was mistyped"]

    console.relay.drain()
    overview = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/overview",
                          headers=OPERATOR).json()
    assert overview["arrears"] == "4.40"  # 5.00 charged, 0.60 given back
    bill = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/daily-bills",
                      params={"date": DAY}, headers=OPERATOR).json()
    assert bill["total"] == "4.40"
    assert {line["item"]: line["amount"] for line in bill["lines"]} == {"logs": "2.40",
                                                                        "trigger": "2.00"}
