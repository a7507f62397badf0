"""What members see: billing details by named period, consumption analysis, usage series."""

from __future__ import annotations

from datetime import date, datetime

from fastapi.testclient import TestClient

from accrual.clock import ManualClock
from accrual.console.domain.periods import period_bounds
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, close_day, console_login, register, send_usage


def test_named_periods() -> None:
    thursday = date(2026, 11, 26)
    assert period_bounds("today", thursday) == (thursday, thursday)
    assert period_bounds("yesterday", thursday) == (date(2026, 11, 25),) * 2
    assert period_bounds("this_week", thursday) == (date(2026, 11, 23), thursday)
    assert period_bounds("last_week", thursday) == (date(2026, 11, 16), date(2026, 11, 22))
    assert period_bounds("this_month", thursday) == (date(2026, 11, 1), thursday)
    assert period_bounds("last_month", thursday) == (date(2026, 10, 1), date(2026, 10, 31))
    assert period_bounds("this_year", thursday) == (date(2026, 1, 1), thursday)
    assert period_bounds("last_month", date(2026, 1, 15)) == (date(2025, 12, 1), date(2025, 12, 31))


def test_details_consumption_and_usage_views(client: TestClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 20, 0, 5, tzinfo=SHANGHAI))
    reg = register(client)
    ws, key = reg["workspace_id"], reg["ingest_key"]
    clock.set(datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI))

    def rec(rid: str, day: int, item: str, quantity: str, tier: int | None = 3) -> dict[str, object]:
        r: dict[str, object] = {"id": rid, "workspace_id": ws, "item": item,
                                "time": f"2026-11-{day:02d}T09:00:00+08:00", "quantity": quantity}
        if tier:
            r["retention_days"] = tier
        return r

    send_usage(client, key, [rec("a", 20, "logs", "1000000"), rec("b", 24, "logs", "3000000"),
                             rec("c", 25, "trigger", "10000", None),
                             rec("d", 25, "timeseries", "1000"), rec("e", 25, "timeseries", "4000"),
                             rec("f", 26, "logs", "500000")])
    for day in ("2026-11-20", "2026-11-24", "2026-11-25"):
        close_day(client, day)
    member = console_login(client)

    yesterday = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                           params={"period": "yesterday"}, headers=member).json()
    assert (yesterday["from"], yesterday["to"]) == ("2026-11-25", "2026-11-25")
    assert sorted((d["item"], d["amount"]) for d in yesterday["details"]) == [
        ("timeseries", "2.40"), ("trigger", "1.00")]
    this_week = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                           params={"period": "this_week"}, headers=member).json()
    assert {d["day"] for d in this_week["details"]} == {"2026-11-24", "2026-11-25"}
    both = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                      params={"period": "today", "from": "2026-11-01"}, headers=member)
    assert (both.status_code, both.json()["error"]["code"]) == (422, "invalid_range")

    analysis = client.get(f"/console/v1/workspaces/{ws}/consumption",
                          params={"period": "this_month"}, headers=member).json()
    assert analysis["total"] == "7.40"
    assert [(i["item"], i["amount"], i["share"]) for i in analysis["items"]] == [
        ("logs", "4.00", "54.05"), ("timeseries", "2.40", "32.43"), ("trigger", "1.00", "13.51")]
    assert [(d["day"], d["amount"]) for d in analysis["daily"]] == [
        ("2026-11-20", "1.00"), ("2026-11-24", "3.00"), ("2026-11-25", "3.40")]

    series = client.get(f"/console/v1/workspaces/{ws}/usage",
                        params={"from": "2026-11-24", "to": "2026-11-26"}, headers=member).json()
    by_item = {(i["item"], i["retention_days"]): i["days"] for i in series["items"]}
    assert by_item[("timeseries", 3)] == [{"day": "2026-11-25", "quantity": "4000", "complete": True}]
    assert by_item[("logs", 3)] == [
        {"day": "2026-11-24", "quantity": "3000000", "complete": True},
        {"day": "2026-11-26", "quantity": "500000", "complete": False}]
    assert client.get(f"/console/v1/workspaces/{ws}/usage", headers=OPERATOR).status_code == 401
