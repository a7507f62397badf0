"""Arrears end to end (reference-billing.md §5, decisions.md 18): usage the cash cannot
cover starts a 14-day countdown, a reminder comes two days before its end, then the
workspaces are locked and their data refused; the top-up that covers the arrears unlocks
them at once. Through the public HTTP API, the scheduler, and a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.billing.services import ledger
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI, START
from tests.helpers import (
    OPERATOR,
    bearer,
    billing_login,
    console_login,
    register,
    send_usage,
)
from tests.smtp import Inbox

DAY = "2026-11-25"
ADA, BOB = "ada@example.com", "bob@example.com"


def subjects(inbox: Inbox, address: str) -> list[str]:
    return [str(m["Subject"]) for m in inbox.messages if m["To"] == address]


def logs(workspace_id: str, record_id: str, millions: int, time: str) -> dict[str, object]:
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "retention_days": 7,
            "time": time, "quantity": str(millions * 1_000_000)}


def test_countdown_reminder_lock_and_unlock(mail_runtime: tuple[Runtime, Inbox],
                                            clock: ManualClock) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        # Ada registers (English) with little cash; Bob (Chinese) has a workspace of his
        # own and a second one, "实验室", that Ada's account pays for.
        clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
        ada = register(client, "ada")
        account = ada["billing_account_id"]
        bob = register(client, "bob", language="zh")
        lab = client.post("/console/v1/workspaces", json={"name": "实验室", "language": "zh"},
                          headers=console_login(client, "bob")).json()
        bound = client.put(f"/billing/v1/admin/workspaces/{lab['workspace_id']}/binding",
                           json={"account_id": account}, headers=OPERATOR)
        assert bound.status_code == 200, bound.text
        credited = client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                               json={"amount": "1.00", "reference": "transfer-1"},
                               headers=OPERATOR)
        assert credited.status_code == 200, credited.text

        # A day of logs at 7 days' retention (1.20 per million): 2.40 + 1.20 = 3.60.
        clock.set(datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI))
        send_usage(client, ada["ingest_key"],
                   [logs(ada["workspace_id"], "a1", 2, f"{DAY}T09:15:00+08:00")])
        send_usage(client, lab["ingest_key"],
                   [logs(lab["workspace_id"], "l1", 1, f"{DAY}T11:15:00+08:00")])

        # The next morning the scheduler closes the day; settling it leaves 2.60 owed.
        clock.set(START)
        runtime.scheduler.tick()
        assert runtime.scheduler.last_error is None
        billing = billing_login(client, "ada")
        overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=billing).json()
        assert (overview["cash"], overview["arrears"]) == ("0.00", "2.60")
        lock_at = (START + timedelta(days=14)).astimezone(UTC).isoformat()
        arrears = client.get(f"/billing/v1/accounts/{account}/arrears", headers=billing).json()
        assert (arrears["state"], arrears["case"]["lock_at"]) == ("countdown", lock_at)

        # Countdown: mailed to Ada in English and to Bob in Chinese (his workspace only);
        # both workspaces show it; data still flows.
        assert subjects(inbox, ADA) == [
            "Account ada is in arrears: workspaces lock on 2026-12-10 10:00 CST"]
        assert subjects(inbox, BOB) == ["费用中心账号 ada 已欠费：工作空间将于 2026-12-10 10:00 CST 锁定"]
        (ada_mail,) = inbox.bodies_to(ADA)
        assert "owes 2.60 CNY" in ada_mail and "ada's team" in ada_mail and "实验室" in ada_mail
        (bob_mail,) = inbox.bodies_to(BOB)
        assert "欠费 2.60 CNY" in bob_mail and "实验室" in bob_mail
        assert "ada's team" not in bob_mail
        ada_console = console_login(client, "ada")
        view = client.get(f"/console/v1/workspaces/{ada['workspace_id']}",
                          headers=ada_console).json()
        assert view["status"] == "active"
        assert view["arrears"] == {"state": "countdown", "lock_at": lock_at}
        bob_own = client.get(f"/console/v1/workspaces/{bob['workspace_id']}",
                             headers=console_login(client, "bob")).json()
        assert bob_own["arrears"] is None

        # Day 12: the reminder (and, it being past the 3rd, November's bill, which tells
        # the countdown too). Ticking again sends nothing more.
        clock.set(START + timedelta(days=12))
        runtime.scheduler.tick()
        runtime.scheduler.tick()
        assert subjects(inbox, ADA)[1:] == [
            "Reminder: workspaces of ada lock on 2026-12-10 10:00 CST",
            "Your bill for 2026-11: 3.60 CNY"]
        bill_mail = inbox.bodies_to(ADA)[-1]
        assert "it owes 2.60 CNY" in bill_mail and "paid by 2026-12-10 10:00 CST" in bill_mail
        assert subjects(inbox, BOB)[1:] == ["提醒：ada 的工作空间将于 2026-12-10 10:00 CST 锁定"]
        admitted = client.post("/console/v1/admission", headers=bearer(ada["ingest_key"]),
                               json={"checks": [{"workspace_id": ada["workspace_id"],
                                                 "item": "logs"}]}).json()
        assert admitted["answers"][0]["allowed"] is True

        # Past day 14: locked. Admission and ingestion refuse the workspaces' data.
        clock.set(START + timedelta(days=14, minutes=1))
        runtime.scheduler.tick()
        assert subjects(inbox, ADA)[-1] == "Workspaces of ada are locked for arrears"
        assert subjects(inbox, BOB)[-1] == "ada 的工作空间因欠费已被锁定"
        assert "新数据将被拒收" in inbox.bodies_to(BOB)[-1]
        for workspace, key in ((ada["workspace_id"], ada["ingest_key"]),
                               (lab["workspace_id"], lab["ingest_key"])):
            answer = client.post("/console/v1/admission", headers=bearer(key), json={
                "checks": [{"workspace_id": workspace, "item": "logs"}]}).json()["answers"][0]
            assert (answer["allowed"], answer["reason"]) == (False, "locked")
        now = clock.now().isoformat()
        refused = client.post("/console/v1/usage", headers=bearer(ada["ingest_key"]), json={
            "records": [logs(ada["workspace_id"], "a2", 1, now)]})
        assert refused.status_code == 422
        assert [r["code"] for r in refused.json()["rejected"]] == ["workspace_locked"]
        ada_console = console_login(client, "ada")  # sessions last 7 days
        assert client.get(f"/console/v1/workspaces/{ada['workspace_id']}",
                          headers=ada_console).json()["status"] == "locked"
        assert client.get(f"/console/v1/workspaces/{bob['workspace_id']}",
                          headers=console_login(client, "bob")).json()["status"] == "active"

        # The offline top-up that covers the arrears unlocks both at once: as soon as the
        # billing relay has delivered, before any tick.
        topped = client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                             json={"amount": "2.60", "reference": "transfer-2"},
                             headers=OPERATOR)
        assert topped.status_code == 200 and topped.json()["arrears"] == "0.00"
        assert runtime.billing_relay_drain() == 2
        assert client.get(f"/console/v1/workspaces/{ada['workspace_id']}",
                          headers=ada_console).json()["arrears"] is None
        accepted = send_usage(client, ada["ingest_key"],
                              [logs(ada["workspace_id"], "a2", 1, now)])
        assert accepted["accepted"] == 1
        send_usage(client, lab["ingest_key"], [logs(lab["workspace_id"], "l2", 1, now)])

        runtime.scheduler.tick()
        assert subjects(inbox, ADA)[-1] == "Workspaces of ada are unlocked"
        assert subjects(inbox, BOB)[-1] == "ada 的工作空间已解锁"
        assert "实验室" in inbox.bodies_to(BOB)[-1]
        assert len(inbox.bodies_to(ADA)) == 5 and len(inbox.bodies_to(BOB)) == 4
        assert client.get(f"/billing/v1/accounts/{account}/arrears",
                          headers=billing_login(client, "ada")).json()["state"] == "none"
        with runtime.billing.engine.connect() as conn:
            assert ledger.audit(conn).ok
