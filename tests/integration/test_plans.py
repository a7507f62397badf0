"""Plans: retention policies, free-plan quotas and admission, the upgrade with a mailed code."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.console.adapters import tables as console_tables
from tests.conftest import SHANGHAI, START
from tests.helpers import (
    OPERATOR,
    bearer,
    close_day,
    console_login,
    register,
    send_usage,
)
from tests.smtp import Inbox

TODAY = START.date().isoformat()


def at(hour: int, minute: int = 0, day: int = 26) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def record(ws: str, rid: str, hour: int, quantity: str = "1000000", item: str = "logs",
           day: int = 26, **extra: object) -> dict[str, object]:
    return {"id": rid, "workspace_id": ws, "item": item,
            "time": at(hour, 5, day).isoformat(), "quantity": quantity, **extra}


def stored_tiers(runtime: Runtime, ws: str) -> dict[str, int]:
    u = console_tables.usage_records
    with runtime.console.engine.connect() as conn:
        return dict(conn.execute(select(u.c.record_id, u.c.retention_days)
                                 .where(u.c.workspace_id == ws)).all())


def test_retention_first_change_applies_at_once_later_ones_next_day(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(at(0, 1))
    reg = register(client)
    ws, key = reg["workspace_id"], reg["ingest_key"]
    owner = console_login(client)
    send_usage(client, key, [record(ws, "before", 0)])  # default: 14 days for logs

    clock.set(at(10))
    first = client.put(f"/console/v1/workspaces/{ws}/retention/logs",
                       json={"retention_days": 30}, headers=owner)
    assert first.status_code == 200, first.text
    assert first.json()["applies"] == "now"
    clock.set(at(10, 30))
    send_usage(client, key, [record(ws, "after-first", 10)])

    clock.set(at(11))
    second = client.put(f"/console/v1/workspaces/{ws}/retention/logs",
                        json={"retention_days": 60}, headers=owner).json()
    assert second["applies"] == "next_day"
    assert second["effective_from"] == "2026-11-26T16:00:00+00:00"  # 00:00 in Shanghai
    third = client.put(f"/console/v1/workspaces/{ws}/retention/logs",
                       json={"retention_days": 7}, headers=owner).json()
    assert third["applies"] == "next_day"
    policies = {p["data_type"]: p for p in client.get(
        f"/console/v1/workspaces/{ws}/retention", headers=owner).json()["policies"]}
    assert policies["logs"]["retention_days"] == 30
    assert policies["logs"]["pending"]["retention_days"] == 7  # the last one asked for
    assert policies["metrics"]["retention_days"] == 7

    clock.set(at(12))
    send_usage(client, key, [record(ws, "same-day", 11)])
    clock.set(at(1, 0, day=27))
    send_usage(client, key, [record(ws, "next-day", 0, day=27)])
    assert stored_tiers(runtime, ws) == {"before": 14, "after-first": 30, "same-day": 30,
                                         "next-day": 7}

    # One item, two tiers on one day: two details, each at its own price.
    close_day(client, TODAY)
    details = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                         params={"from": TODAY, "to": TODAY}, headers=owner).json()["details"]
    assert sorted((d["retention_days"], d["quantity"], d["amount"]) for d in details) == [
        (14, "1000000", "1.50"), (30, "2000000", "4.00")]


def test_retention_rules_refuse_clearly(client: TestClient, runtime: Runtime) -> None:
    reg = register(client)
    ws = reg["workspace_id"]
    owner = console_login(client)
    bad = client.put(f"/console/v1/workspaces/{ws}/retention/logs", json={"retention_days": 45},
                     headers=owner)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_retention")
    unknown = client.put(f"/console/v1/workspaces/{ws}/retention/videos",
                         json={"retention_days": 7}, headers=owner)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_data_type")
    free = client.post("/console/v1/workspaces", json={"name": "free one"}, headers=owner).json()
    refused = client.put(f"/console/v1/workspaces/{free['workspace_id']}/retention/logs",
                         json={"retention_days": 30}, headers=owner)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "commercial_only")

    register(client, "bob")
    with runtime.console.engine.begin() as conn:
        bob = conn.execute(select(console_tables.accounts.c.id)
                           .where(console_tables.accounts.c.email == "bob@example.com")).scalar_one()
        conn.execute(insert(console_tables.members).values(workspace_id=ws, account_id=bob,
                                                           role="admin"))
    admin = client.put(f"/console/v1/workspaces/{ws}/retention/logs", json={"retention_days": 30},
                       headers=console_login(client, "bob"))
    assert (admin.status_code, admin.json()["error"]["code"]) == (403, "owner_only")


def test_free_plan_quota_and_admission(client: TestClient, clock: ManualClock) -> None:
    reg = register(client)
    owner = console_login(client)
    free = client.post("/console/v1/workspaces", json={"name": "free"}, headers=owner).json()
    ws, key = free["workspace_id"], free["ingest_key"]
    checks = {"checks": [{"workspace_id": ws, "item": i}
                         for i in ("logs", "infrastructure", "sms", "trace")]}

    send_usage(client, key, [record(ws, "a", 9, "999999")])
    answers = client.post("/console/v1/admission", json=checks, headers=bearer(key)).json()["answers"]
    assert [(a["item"], a["allowed"], a["reason"]) for a in answers] == [
        ("logs", True, None), ("infrastructure", True, None), ("sms", False, "not_in_plan"),
        ("trace", True, None)]

    send_usage(client, key, [record(ws, "b", 9, "1")])
    logs = client.post("/console/v1/admission", json=checks, headers=bearer(key)).json()["answers"][0]
    assert (logs["allowed"], logs["reason"], logs["used"], logs["quota"]) == (
        False, "quota_exceeded", "1000000", 1000000)
    assert logs["resets_at"] == "2026-11-26T16:00:00+00:00"
    quota = client.get(f"/console/v1/workspaces/{ws}/quota", headers=owner).json()
    assert {i["item"]: i["exceeded"] for i in quota["items"]}["logs"] is True

    # Another workspace's key may not ask; the commercial workspace is never held back.
    foreign = client.post("/console/v1/admission", headers=bearer(reg["ingest_key"]), json=checks)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "foreign_workspace")
    commercial = client.post("/console/v1/admission", headers=OPERATOR, json={"checks": [
        {"workspace_id": reg["workspace_id"], "item": "sms"}]}).json()["answers"][0]
    assert commercial["allowed"] is True

    clock.set(at(0, 1, day=27))  # the quota resets at the site's midnight
    logs = client.post("/console/v1/admission", json=checks, headers=bearer(key)).json()["answers"][0]
    assert logs["allowed"] is True and logs["used"] == "0"



@pytest.mark.db
def test_upgrade_with_a_mailed_code(mail_runtime: tuple[Runtime, Inbox], clock: ManualClock) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        reg = register(client)
        owner = console_login(client)
        free = client.post("/console/v1/workspaces", json={"name": "Lab", "language": "zh"},
                           headers=owner).json()
        ws = free["workspace_id"]
        send_usage(client, free["ingest_key"], [record(ws, "free-time", 9)])

        asked = client.post(f"/console/v1/workspaces/{ws}/upgrade", json={"username": "ada"},
                            headers=owner)
        assert asked.status_code == 200, asked.text
        assert asked.json()["sent_to"] == "a***@example.com"
        (body,) = inbox.bodies_to("ada@example.com")
        assert "验证码" in body  # the workspace's language
        code = re.search(r"(\d{6})", body).group(1)  # type: ignore[union-attr]

        wrong = client.post(f"/console/v1/workspaces/{ws}/upgrade/confirm",
                            json={"username": "ada", "code": "000000" if code != "000000" else "111111"},
                            headers=owner)
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (422, "wrong_code")
        done = client.post(f"/console/v1/workspaces/{ws}/upgrade/confirm",
                           json={"username": "ada", "code": code}, headers=owner)
        assert done.status_code == 200, done.text
        assert done.json()["plan"] == "commercial"
        again = client.post(f"/console/v1/workspaces/{ws}/upgrade", json={"username": "ada"},
                            headers=owner)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_commercial")

        clock.set(START + timedelta(hours=1))
        send_usage(client, free["ingest_key"], [record(ws, "paid-time", 10)])
        clock.set(at(1, day=27))
        close_day(client, TODAY)
        bill = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/daily-bills",
                          params={"date": TODAY}, headers=OPERATOR).json()
        # Only the usage after the upgrade is billed (1 M logs at the default 14 days).
        assert [(line["workspace_id"], line["quantity"], line["amount"]) for line in bill["lines"]] \
            == [(ws, "1000000", "1.50")]


@pytest.mark.db
def test_upgrade_refusals(mail_runtime: tuple[Runtime, Inbox]) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        register(client)
        owner = console_login(client)
        free = client.post("/console/v1/workspaces", json={"name": "Lab"}, headers=owner).json()
        ws = free["workspace_id"]
        nobody = client.post(f"/console/v1/workspaces/{ws}/upgrade", json={"username": "nobody"},
                             headers=owner)
        assert (nobody.status_code, nobody.json()["error"]["code"]) == (404, "account_not_found")
        no_code = client.post(f"/console/v1/workspaces/{ws}/upgrade/confirm",
                              json={"username": "ada", "code": "123456"}, headers=owner)
        assert (no_code.status_code, no_code.json()["error"]["code"]) == (422, "code_expired")
        client.post(f"/console/v1/workspaces/{ws}/upgrade", json={"username": "ada"}, headers=owner)
        code = re.search(r"(\d{6})", inbox.bodies_to("ada@example.com")[-1]).group(1)  # type: ignore[union-attr]
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            client.post(f"/console/v1/workspaces/{ws}/upgrade/confirm",
                        json={"username": "ada", "code": wrong}, headers=owner)
        locked = client.post(f"/console/v1/workspaces/{ws}/upgrade/confirm",
                             json={"username": "ada", "code": code}, headers=owner)
        assert (locked.status_code, locked.json()["error"]["code"]) == (403, "too_many_attempts")
        register(client, "bob")
        other = client.post(f"/console/v1/workspaces/{ws}/upgrade", json={"username": "ada"},
                            headers=console_login(client, "bob"))
        assert (other.status_code, other.json()["error"]["code"]) == (404, "workspace_not_found")
