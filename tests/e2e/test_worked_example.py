"""The reference's worked example (reference-billing.md §2.4) through the public HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI, START
from tests.helpers import (
    OPERATOR,
    billing_login,
    close_day,
    console_login,
    register,
    send_usage,
)

DAY = "2026-11-25"


def worked_example(workspace_id: str, prefix: str = "r") -> list[dict[str, object]]:
    """6,000 series at 3 d, 2 M logs at 7 d, 2 M traces at 3 d, 20,000 PV at 3 d,
    20,000 task calls, spread over hours and batches as collectors would send them."""
    def record(n: int, item: str, hour: int, quantity: str, tier: int | None = None) -> dict[str, object]:
        r: dict[str, object] = {"id": f"{prefix}-{n}", "workspace_id": workspace_id, "item": item,
                                "time": f"{DAY}T{hour:02d}:15:00+08:00", "quantity": quantity}
        if tier is not None:
            r["retention_days"] = tier
        return r

    return [
        # Time series are cumulative distinct counts so far that day: the max counts.
        record(1, "timeseries", 0, "2000", 3),
        record(2, "timeseries", 9, "4500", 3),
        record(3, "timeseries", 23, "6000", 3),
        record(4, "timeseries", 15, "5000", 3),
        *(record(10 + h, "logs", h, "500000", 7) for h in (1, 7, 13, 19)),
        record(20, "trace", 8, "1200000", 3),
        record(21, "trace", 20, "800000", 3),
        record(30, "rum_pv", 11, "20000", 3),
        record(40, "trigger", 2, "15000"),
        record(41, "trigger", 22, "5000"),
    ]


EXPECTED = {"timeseries": "3.60", "logs": "2.40", "trace": "4.00", "rum_pv": "1.40",
            "trigger": "2.00"}


def amounts_by_item(details: list[dict[str, object]]) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for d in details:
        totals[str(d["item"])] = totals.get(str(d["item"]), Decimal(0)) + Decimal(str(d["amount"]))
    return {item: str(total) for item, total in totals.items()}


def test_worked_example_end_to_end(client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    # The tenant registers early on the day it is billed for; the day is closed next morning.
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = register(client)
    account = reg["billing_account_id"]
    billing = billing_login(client)

    credited = client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                           json={"amount": "10.00", "reference": "transfer-1"}, headers=OPERATOR)
    assert credited.status_code == 200, credited.text

    records = worked_example(reg["workspace_id"])
    clock.set(START)
    report = send_usage(client, reg["ingest_key"], records)
    assert report == {"accepted": len(records), "duplicates": 0, "rejected": []}

    closed = close_day(client, DAY)
    assert closed["charges"] == 5 and closed["adjustments"] == 0 and closed["delivered"] >= 5

    # Billing details under the workspace, as a member sees them.
    details = client.get(f"/console/v1/workspaces/{reg['workspace_id']}/billing-details",
                         params={"from": DAY, "to": DAY}, headers=console_login(client)).json()
    assert amounts_by_item(details["details"]) == EXPECTED
    assert sum(Decimal(d["amount"]) for d in details["details"]) == Decimal("13.40")
    assert all(d["kind"] == "charge" and d["currency"] == "CNY" for d in details["details"])
    by_item = {d["item"]: d for d in details["details"]}
    assert by_item["timeseries"]["quantity"] == "6000"
    assert by_item["timeseries"]["unit_price"] == "0.6"
    assert by_item["logs"]["retention_days"] == 7

    # The account's daily bill shows the same lines.
    bill = client.get(f"/billing/v1/accounts/{account}/daily-bills", params={"date": DAY},
                      headers=billing).json()
    assert {line["item"]: line["amount"] for line in bill["lines"]} == EXPECTED
    assert bill["total"] == "13.40"
    assert {line["workspace_id"] for line in bill["lines"]} == {reg["workspace_id"]}

    # 10.00 of cash paid 10.00; the remaining 3.40 is owed.
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=billing).json()
    assert overview == {"currency": "CNY", "cash": "0.00", "vouchers": "0.00",
                        "prepaid_cards": "0.00", "arrears": "3.40"}

    # Resending everything and closing again changes no amount.
    again = send_usage(client, reg["ingest_key"], records)
    assert again == {"accepted": 0, "duplicates": len(records), "rejected": []}
    reclosed = close_day(client, DAY)
    assert reclosed["charges"] == 0 and reclosed["adjustments"] == 0 and reclosed["already_closed"]
    assert client.get(f"/billing/v1/accounts/{account}/daily-bills", params={"date": DAY},
                      headers=billing).json()["total"] == "13.40"
    assert client.get(f"/billing/v1/accounts/{account}/overview",
                      headers=billing).json()["arrears"] == "3.40"

    # A top-up pays the arrears first.
    topped = client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                         json={"amount": "5", "reference": "transfer-2"}, headers=OPERATOR)
    assert topped.status_code == 200
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=billing).json()
    assert (overview["cash"], overview["arrears"]) == ("1.60", "0.00")

    with runtime.billing.engine.connect() as conn:
        assert ledger.audit(conn).ok


def test_two_workspaces_bound_to_one_account_are_both_charged(client: TestClient,
                                                                clock: ManualClock) -> None:
    reg = register(client)
    session = console_login(client)
    created = client.post("/console/v1/workspaces", json={"name": "Staging"}, headers=session)
    assert created.status_code == 201, created.text
    second = created.json()
    assert second["plan"] == "free"

    bound = client.put(f"/billing/v1/admin/workspaces/{second['workspace_id']}/binding",
                       json={"username": "ada"}, headers=OPERATOR)
    assert bound.status_code == 200, bound.text
    assert bound.json()["effective_from"] == "2026-11-26"
    ws = client.get(f"/console/v1/workspaces/{second['workspace_id']}", headers=session).json()
    assert ws["plan"] == "commercial" and ws["billing_account_id"] == reg["billing_account_id"]

    # Bound today: today's usage is billed to the account once the day is closed.
    today = START.date().isoformat()
    clock.set(START + timedelta(hours=2))
    records = [{"id": "a", "workspace_id": reg["workspace_id"], "item": "logs",
                "time": f"{today}T11:00:00+08:00", "quantity": "1000000", "retention_days": 3}]
    send_usage(client, reg["ingest_key"], records)
    send_usage(client, second["ingest_key"], [
        {**records[0], "workspace_id": second["workspace_id"]},
        # Before the upgrade at 10:00 the workspace was free: never billed.
        {**records[0], "id": "b", "workspace_id": second["workspace_id"],
         "time": f"{today}T09:00:00+08:00"}])
    clock.set(START.replace(day=27))
    close_day(client, today)

    bill = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/daily-bills",
                      params={"date": today}, headers=OPERATOR).json()
    assert {line["workspace_id"] for line in bill["lines"]} == {reg["workspace_id"],
                                                                second["workspace_id"]}
    assert bill["total"] == "2.00"
    overview = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/overview",
                          headers=OPERATOR).json()
    assert overview["arrears"] == "2.00"
