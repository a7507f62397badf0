"""Acceptance (issue: hostile input and failure isolation): one workspace sends the most
the API allows for a day, and every other workspace of the site is still closed, billed
and settled in the same scheduler tick, while ``/healthz`` names what is degraded.

The hostile tenant fills every item it may use to that item's daily limit (the largest
record first, then one more that must be refused). Its details are each below the
largest amount a detail may carry, but together they pass the bound on an account's
balance: the billing center refuses to settle the ones that would cross it, and those
messages alone wait, retried with backoff, while the rest of the site goes on.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as bt
from accrual.billing.domain.bounds import MAX_BALANCE_MINOR
from accrual.billing.services.ledger import audit
from accrual.catalog import ITEMS
from accrual.clock import ManualClock
from accrual.console.adapters import tables as ct
from accrual.console.domain.usage import MAX_QUANTITY
from accrual.money import format_minor
from tests.conftest import SHANGHAI, START
from tests.helpers import OPERATOR, register, send_usage
from tests.integration.test_bulkheads import (  # noqa: F401 (an autouse fixture)
    charged,
    cheap_passwords,
)

DAY = "2026-11-25"


def usage(workspace_id: str, record_id: str, item: str, quantity: int) -> dict[str, Any]:
    return {"id": record_id, "workspace_id": workspace_id, "item": item,
            "time": f"{DAY}T12:00:00+08:00", "quantity": str(quantity)}


def test_the_most_one_workspace_may_send_does_not_delay_anybody_else(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 25, 0, 1, tzinfo=SHANGHAI))
    eve, ada, bob = (register(client, name) for name in ("eve", "ada", "bob"))
    clock.set(START)

    limits = runtime.console.ingestion.limits
    offered = [code for code, item in ITEMS.items() if not item.legacy
               and "cn" in item.site_groups and "CNY" in item.currencies]
    flood: list[dict[str, Any]] = []
    for code in offered:
        # Records of at most MAX_QUANTITY each, until the item's day is full.
        left, n = limits.day_limit(code), 0
        while left > 0:
            quantity = min(left, MAX_QUANTITY)
            flood.append(usage(eve["workspace_id"], f"{code}-{n}", code, quantity))
            left -= quantity
            n += 1
    report = send_usage(client, eve["ingest_key"], flood)
    assert (report["accepted"], report["rejected"]) == (len(flood), [])
    # The day is full: one more unit of anything is refused, record by record.
    refused = client.post("/console/v1/usage", headers={
        "Authorization": f"Bearer {eve['ingest_key']}"}, json={"records": [
            usage(eve["workspace_id"], f"{code}-more", code, 1) for code in offered
            if ITEMS[code].rule.value == "sum"]})
    assert refused.status_code == 422, refused.text
    more = refused.json()
    assert (more["accepted"], more["error"]["code"]) == (0, "all_records_rejected")
    assert {r["code"] for r in more["rejected"]} == {"daily_limit_exceeded"}

    for reg in (ada, bob):
        send_usage(client, reg["ingest_key"], [usage(reg["workspace_id"], "l", "logs", 2_000_000)])
    client.post(f"/billing/v1/admin/accounts/{ada['billing_account_id']}/recharges",
                headers=OPERATOR, json={"amount": "100.00", "reference": "bank-ada-1"})

    # Eve's quota and usage views answer (they read the bounded day totals).
    for path in ("quota", f"usage?from={DAY}&to={DAY}"):
        eve_session = client.post("/console/v1/sessions", json={
            "email": "eve@example.com", "password": "correct horse battery"}).json()["token"]
        seen = client.get(f"/console/v1/workspaces/{eve['workspace_id']}/{path}",
                          headers={"Authorization": f"Bearer {eve_session}"})
        assert seen.status_code == 200, (path, seen.text)

    runtime.scheduler.tick()  # 10:00 on the 26th: the 25th closes, relays and settles

    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(ct.closed_days.c.day)).scalars().all() == [date(2026, 11, 25)]
    lines = charged(runtime)
    for reg in (ada, bob):  # billed and settled on time, whatever eve did
        assert [(item, status) for item, status, _ in lines[reg["workspace_id"]]] == [
            ("logs", "settled")]
    overview = client.get(f"/billing/v1/accounts/{ada['billing_account_id']}/overview",
                          headers=OPERATOR).json()
    (_, _, ada_logs), = lines[ada["workspace_id"]]
    assert ada_logs > 0 and overview["cash"] == format_minor(10_000 - ada_logs, "CNY")

    # Eve's details were all made; those the balance bound cannot take wait, alone.
    with runtime.console.engine.connect() as conn:
        eve_details = conn.execute(select(ct.billing_details.c.id).where(
            ct.billing_details.c.workspace_id == eve["workspace_id"])).scalars().all()
        waiting = conn.execute(select(ct.outbox.c.message_id, ct.outbox.c.last_error)
                               .where(ct.outbox.c.sent_at.is_(None))).all()
    settled = lines.get(eve["workspace_id"], [])
    assert eve_details and waiting
    assert len(settled) + len(waiting) == len(eve_details)
    assert all("balance_limit_exceeded" in (error or "") or "BalanceLimitExceeded" in (error or "")
               for _, error in waiting), waiting
    with runtime.billing.engine.connect() as conn:
        assert audit(conn).ok
        prepaid = conn.execute(select(bt.ledger_accounts.c.balance_minor).where(
            bt.ledger_accounts.c.owner == eve["billing_account_id"],
            bt.ledger_accounts.c.kind == "prepaid")).scalar_one()
    assert -MAX_BALANCE_MINOR <= prepaid < 0 and isinstance(prepaid, int)

    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded"
    assert {"cn1 relay", "billing inbox"} <= {d["job"] for d in body["degraded"]}

    # Another tick: the others are not held up, and eve's refused details stay refused.
    runtime.scheduler.tick()
    assert {w: ls for w, ls in charged(runtime).items()
            if w != eve["workspace_id"]} == {w: ls for w, ls in lines.items()
                                             if w != eve["workspace_id"]}
