"""High-consumption alerts: mailed once per crossing, re-armed below the threshold."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI
from tests.helpers import close_day, console_login, register, send_usage
from tests.smtp import Inbox


@pytest.mark.db
def test_alert_fires_once_per_crossing(mail_runtime: tuple[Runtime, Inbox], clock: ManualClock) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        clock.set(datetime(2026, 11, 20, 0, 5, tzinfo=SHANGHAI))
        reg = register(client)
        ws = reg["workspace_id"]
        owner = console_login(client)
        refused = client.put(f"/console/v1/workspaces/{ws}/alerts/logs", json={"threshold": "-1"},
                             headers=owner)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_threshold")
        set_ = client.put(f"/console/v1/workspaces/{ws}/alerts/logs", json={"threshold": "2.50"},
                          headers=owner)
        assert set_.status_code == 200, set_.text
        assert set_.json()["threshold"] == "2.50" and set_.json()["armed"] is True

        clock.set(datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI))
        # logs at 3 days: 1.00 per million. Days 20..25: 3, 4, 1, 3, 2.5, 5 millions.
        millions = {20: 3, 21: 4, 22: 1, 23: 3, 24: 2.5, 25: 5}
        send_usage(client, reg["ingest_key"], [
            {"id": f"d{day}", "workspace_id": ws, "item": "logs", "retention_days": 3,
             "time": f"2026-11-{day}T09:00:00+08:00", "quantity": str(int(m * 1_000_000))}
            for day, m in millions.items()])
        for day in millions:
            close_day(client, f"2026-11-{day}")
        runtime.scheduler.tick()
        runtime.scheduler.tick()  # evaluating again sends nothing more

        # (The billing center's arrears mails go to the same address.)
        alerts = [m for m in inbox.messages if m["Subject"].startswith("High consumption")]
        subjects = [m["Subject"] for m in alerts]
        # Fires on the 20th, silent on the 21st, re-armed by the 22nd, fires on the 23rd,
        # the 24th is exactly at the threshold (re-arms), fires again on the 25th.
        assert subjects == [f"High consumption in ada's team: logs on 2026-11-{d}"
                            for d in (20, 23, 25)]
        assert "5.00 CNY" in alerts[-1].get_content()
        listed = client.get(f"/console/v1/workspaces/{ws}/alerts", headers=owner).json()["alerts"]
        assert listed == [{"workspace_id": ws, "item": "logs", "threshold": "2.50", "armed": False,
                           "last_fired_day": "2026-11-25"}]
        assert client.delete(f"/console/v1/workspaces/{ws}/alerts/logs",
                             headers=owner).status_code == 204
        assert client.get(f"/console/v1/workspaces/{ws}/alerts", headers=owner).json()["alerts"] == []
