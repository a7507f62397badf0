"""Two console sites feeding one billing center: each prices with its own column, and
messages from the billing center reach the site the workspace lives on."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from accrual.console.config import ConsoleConfig
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, close_day, register, send_usage

DAY = "2026-11-25"


def test_two_sites_one_billing_center(client: TestClient, runtime: Runtime, clock: ManualClock,
                                      tmp_path: Path) -> None:
    clock.set(datetime(2026, 11, 25, 0, 30, tzinfo=SHANGHAI))
    hk = runtime.attach_site(ConsoleConfig(site="hk1", site_group="intl", zone=ZoneInfo("UTC"),
                                           currency="CNY"),
                             f"sqlite:///{tmp_path / 'hk1.sqlite3'}")
    ada = register(client)  # on cn1
    # On hk1: its own console account, workspace and (for now) its own billing account.
    on_hk = hk.accounts.register("ada.hk@example.com", "correct horse battery", "ada_hk",
                                 "Ada HK", "en")
    assert on_hk.billing_account_id != ada["billing_account_id"]
    hk.nudge_relay()

    # The operator moves the hk1 workspace onto Ada's account: a change applies tomorrow.
    moved = client.put(f"/billing/v1/admin/workspaces/{on_hk.workspace_id}/binding",
                       json={"account_id": ada["billing_account_id"]}, headers=OPERATOR)
    assert moved.status_code == 200, moved.text
    assert moved.json()["effective_from"] == "2026-11-26"
    runtime.billing_relay_drain()
    assert hk.accounts.workspace(on_hk.workspace_id).billing_account_id == ada["billing_account_id"]  # type: ignore[union-attr]
    assert runtime.console.accounts.workspace(on_hk.workspace_id) is None  # not cn1's business

    clock.set(datetime(2026, 11, 26, 0, 45, tzinfo=SHANGHAI))
    one_million_logs = {"item": "logs", "quantity": "1000000", "retention_days": 3}
    send_usage(client, ada["ingest_key"], [{"id": "1", "workspace_id": ada["workspace_id"],
                                            "time": f"{DAY}T12:00:00+08:00", **one_million_logs}])
    assert hk.ingestion.ingest([
        {"id": "1", "workspace_id": on_hk.workspace_id, "time": f"{DAY}T12:00:00+00:00",
         **one_million_logs}]).accepted == 1
    close_day(client, DAY)
    clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI))  # 01:00 UTC on hk1
    assert hk.ingestion.ingest([
        {"id": "2", "workspace_id": on_hk.workspace_id, "time": "2026-11-26T00:10:00+00:00",
         **one_million_logs}]).accepted == 1
    hk.day_close.close_day(datetime(2026, 11, 25).date())
    hk.day_close.close_day(datetime(2026, 11, 26).date())
    hk.nudge_relay()

    def bill(account: str, day: str) -> dict[str, object]:
        return client.get(f"/billing/v1/accounts/{account}/daily-bills", params={"date": day},
                          headers=OPERATOR).json()

    # 25th: each workspace with its own account; the hk1 line at the RMB Intl price.
    assert [(x["site"], x["amount"]) for x in bill(ada["billing_account_id"], DAY)["lines"]] == [
        ("cn1", "1.00")]
    assert [(x["site"], x["amount"]) for x in bill(on_hk.billing_account_id, DAY)["lines"]] == [
        ("hk1", "2.00")]
    # 26th: the changed binding sends hk1's usage to Ada's account.
    assert [(x["site"], x["amount"]) for x in bill(ada["billing_account_id"], "2026-11-26")["lines"]] \
        == [("hk1", "2.00")]
    arrears = {a: Decimal(client.get(f"/billing/v1/accounts/{a}/overview",
                                     headers=OPERATOR).json()["arrears"])
               for a in (ada["billing_account_id"], on_hk.billing_account_id)}
    assert arrears == {ada["billing_account_id"]: Decimal("3.00"),
                       on_hk.billing_account_id: Decimal("2.00")}
    with runtime.billing.engine.connect() as conn:
        assert ledger.audit(conn).ok
    hk.engine.dispose()
