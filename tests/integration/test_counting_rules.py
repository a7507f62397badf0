"""The counting rules applied by the metering engine, through the API, on both databases.

Expected amounts are worked out by hand (CN/RMB current prices, reference §2.2).
"""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient

from accrual.clock import ManualClock
from tests.conftest import SHANGHAI, START
from tests.helpers import close_day, console_login, register, send_usage

DAY = "2026-11-25"


def test_rules_from_raw_attributes(client: TestClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = register(client)
    ws = reg["workspace_id"]
    clock.set(START)

    def rec(rid: str, item: str, quantity: int, hour: int = 9, **extra: object) -> dict[str, object]:
        return {"id": rid, "workspace_id": ws, "item": item, "quantity": str(quantity),
                "time": f"{DAY}T{hour:02d}:00:00+08:00", **extra}

    report = send_usage(client, reg["ingest_key"], [
        # 400,000 logs of 25 KB on ES count 2 each; 100,000 of 5 KB on SLS count 2 each.
        rec("l1", "logs", 400_000, retention_days=3, attributes={"size_bytes": 25 * 1024}),
        rec("l2", "logs", 100_000, retention_days=3,
            attributes={"size_bytes": 5 * 1024, "storage": "sls"}),
        # 5,000 traces with 80,000 spans: max(80,000 / 10, 5,000) = 8,000 traces.
        rec("t1", "trace", 3_000, retention_days=3, attributes={"spans": 50_000}),
        rec("t2", "trace", 2_000, hour=15, retention_days=3, attributes={"spans": 30_000}),
        # 10,000 PV with 1,500,000 side events: max(15,000, 10,000) = 15,000 PV.
        rec("p1", "rum_pv", 10_000, retention_days=3,
            attributes={"resource": 1_000_000, "long_task": 100_000, "error": 100_000,
                        "action": 300_000}),
        # Task calls: 1,000 outlier runs with a 30-minute window weigh 6 each; 100 RUM
        # intelligent runs weigh 100 each; 4,000 plain queries weigh 1.
        rec("c1", "trigger", 1_000, attributes={"kind": "outlier", "window_minutes": 30}),
        rec("c2", "trigger", 100, attributes={"kind": "intelligent_rum"}),
        rec("c3", "trigger", 4_000),
        # Profiles over 300 KB: 1,000 of 700 KB count 2 each; APM policy 14 days.
        rec("f1", "profile", 1_000, attributes={"size_bytes": 700 * 1024}),
        # Synthetic tests from self-built nodes are logs (default index: 14 days).
        rec("s1", "synthetic_test", 200_000, attributes={"node": "self_built"}),
        rec("s2", "synthetic_test", 20_000),
    ])
    assert report == {"accepted": 11, "duplicates": 0, "rejected": []}
    bad = client.post("/console/v1/usage", headers={"Authorization": f"Bearer {reg['ingest_key']}"},
                      json={"records": [rec("x", "logs", 1, attributes={"size_bytes": -5})]})
    assert bad.status_code == 422
    assert bad.json()["rejected"][0]["code"] == "invalid_attributes"

    close_day(client, DAY)
    details = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                         params={"from": DAY, "to": DAY}, headers=console_login(client)).json()
    got = {(d["item"], d["retention_days"]): (d["quantity"], d["amount"]) for d in details["details"]}
    assert got == {
        ("logs", 3): ("1000000", "1.00"),           # 800,000 + 200,000 at 1 per million
        ("logs", 14): ("200000", "0.30"),           # self-built tests at 1.5 per million
        ("trace", 3): ("8000", "0.02"),             # 0.008 × 2 = 0.016 → 0.02
        ("rum_pv", 3): ("15000", "1.05"),           # 1.5 × 0.7
        ("trigger", 0): ("20000", "2.00"),          # 6,000 + 10,000 + 4,000 at 1 per 10,000
        ("profile", 14): ("2000", "0.10"),          # 0.2 × 0.5
        ("synthetic_test", 0): ("20000", "2.00"),   # 2 × 1
    }
