"""Monthly bills (generated on the 3rd, immutable), consumption and movement exports."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from pypdf import PdfReader

from accrual.app import Runtime
from accrual.billing.exports import bill_row
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def logs(ws: str, rid: str, day: str, quantity: str) -> dict[str, object]:
    return {"id": rid, "workspace_id": ws, "item": "logs", "time": f"{day}T12:00:00+08:00",
            "quantity": quantity, "retention_days": 3}


def test_monthly_bill_generation_immutability_and_exports(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(at(10, 30, 0))
    reg = register(client)
    ws, key, account = reg["workspace_id"], reg["ingest_key"], reg["billing_account_id"]
    session = billing_login(client)
    client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                json={"amount": "100", "reference": "t-1"}, headers=OPERATOR)
    clock.set(at(11, 1, 13))
    sent = send_usage(client, key, [logs(ws, "a", "2026-10-30", "1000000"),
                                    logs(ws, "b", "2026-10-31", "2500000"),
                                    logs(ws, "c", "2026-11-01", "1000000")])
    assert sent["accepted"] == 3
    for day in ("2026-10-30", "2026-10-31"):
        close_day(client, day)

    early = client.post(f"/billing/v1/admin/accounts/{account}/monthly-bills",
                        json={"month": "2026-10"}, headers=OPERATOR)
    assert (early.status_code, early.json()["error"]["code"]) == (422, "month_not_due")

    clock.set(at(11, 3, 0))  # the 3rd: the scheduler generates October's bill
    runtime.scheduler.tick()
    bills = client.get(f"/billing/v1/accounts/{account}/monthly-bills", headers=session).json()
    assert [(b["month"], b["total"], b["lines"]) for b in bills["bills"]] == [("2026-10", "3.50", 2)]
    runtime.scheduler.tick()  # generating again changes nothing
    assert len(client.get(f"/billing/v1/accounts/{account}/monthly-bills",
                          headers=session).json()["bills"]) == 1

    # Late usage for October after the bill: an adjustment that lands on November's bill.
    clock.set(at(11, 4))
    send_usage(client, key, [logs(ws, "d", "2026-10-31", "500000")])
    runtime.scheduler.tick()
    october = client.get(f"/billing/v1/accounts/{account}/monthly-bills/2026-10",
                         headers=session).json()
    assert october["total"] == "3.50" and len(october["details"]) == 2
    clock.set(at(12, 3, 1))
    runtime.scheduler.tick()
    session = billing_login(client)  # a month later: the old session has expired
    november = client.get(f"/billing/v1/accounts/{account}/monthly-bills/2026-11",
                          headers=session).json()
    assert runtime.scheduler.last_error is None, runtime.scheduler.last_error
    assert [(d["day"], d["kind"], d["amount"]) for d in november["details"]] == [
        ("2026-10-31", "adjustment", "0.50"), ("2026-11-01", "charge", "1.00")]
    assert november["total"] == "1.50"

    # Exports match the bill to the cent.
    as_csv = client.get(f"/billing/v1/accounts/{account}/monthly-bills/2026-10",
                        params={"format": "csv"}, headers=session)
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("3.50")
    as_xlsx = client.get(f"/billing/v1/accounts/{account}/monthly-bills/2026-10",
                         params={"format": "xlsx"}, headers=session)
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    header, *cells = list(sheet.iter_rows(values_only=True))  # type: ignore[union-attr]
    amounts = [Decimal(str(row[header.index("amount")])) for row in cells]
    assert sum(amounts) == Decimal("3.50") and len(amounts) == 2
    as_pdf = client.get(f"/billing/v1/accounts/{account}/monthly-bills/2026-10",
                        params={"format": "pdf"}, headers=session)
    assert as_pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(as_pdf.content)).pages)
    assert "Monthly statement 2026-10" in text and "Total: 3.50" in text and "ada" in text

    # Consumption details and the movements of the balances.
    details = client.get(f"/billing/v1/accounts/{account}/consumption",
                         params={"from": "2026-10-01", "to": "2026-11-30"}, headers=session).json()
    assert sum(Decimal(d["amount"]) for d in details["details"]) == Decimal("5.00")
    moves = client.get(f"/billing/v1/accounts/{account}/transactions",
                       params={"from": "2026-10-01", "to": "2026-12-31", "format": "csv"},
                       headers=session)
    movements = list(csv.DictReader(io.StringIO(moves.content.decode("utf-8-sig"))))
    cash = sum(Decimal(m["amount"]) for m in movements if m["balance"] == "cash")
    assert cash == Decimal("95.00")
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=session).json()
    assert overview["cash"] == "95.00"


def test_no_monthly_bill_for_a_month_before_the_account_existed(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(at(11, 20))
    account = register(client)["billing_account_id"]
    clock.set(at(11, 26))  # October's bills are due: the account did not exist then
    assert runtime.billing.statements.generate_due() == 0
    clock.set(at(12, 3))
    assert runtime.billing.statements.generate_due() == 1
    assert [bill_row(b)["month"] for b in runtime.billing.statements.bills(account)] == ["2026-11"]
