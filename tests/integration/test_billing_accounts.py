"""Billing accounts: profile, enterprise certification, change of binding, Bind Workspace."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import START
from tests.helpers import (
    OPERATOR,
    billing_login,
    close_day,
    console_login,
    register,
    send_usage,
)
from tests.smtp import Inbox

CERT = {"enterprise_name": "Analytical Engines Ltd", "taxpayer_id": "91310000ma1fl0xx1x"}



def test_profile_and_certification(client: TestClient) -> None:
    reg = register(client)
    account, session = reg["billing_account_id"], billing_login(client)
    updated = client.patch(f"/billing/v1/accounts/{account}/profile", headers=session,
                           json={"contact_name": "Ada", "phone": "+86 138 0000 0000", "language": "zh"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["contact_name"], updated.json()["language"]) == ("Ada", "zh")
    bad = client.patch(f"/billing/v1/accounts/{account}/profile", headers=session,
                       json={"phone": "call me"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_phone")

    bad = client.put(f"/billing/v1/accounts/{account}/certification", headers=session,
                     json={**CERT, "taxpayer_id": "123"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_taxpayer_id")
    certified = client.put(f"/billing/v1/accounts/{account}/certification", headers=session, json=CERT)
    assert certified.status_code == 200
    assert certified.json()["certification"]["taxpayer_id"] == "91310000MA1FL0XX1X"
    again = client.put(f"/billing/v1/accounts/{account}/certification", headers=session, json=CERT)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_certified")


def test_change_of_binding_needs_the_same_certification(client: TestClient, clock: ManualClock) -> None:
    ada = register(client)
    bob = register(client, "bob")
    ada_session, bob_session = billing_login(client), billing_login(client, "bob")
    move = f"/billing/v1/accounts/{ada['billing_account_id']}/workspaces/{ada['workspace_id']}/move"

    refused = client.post(move, json={"to_username": "bob"}, headers=ada_session)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "certification_mismatch")
    client.put(f"/billing/v1/accounts/{ada['billing_account_id']}/certification",
               headers=ada_session, json=CERT)
    client.put(f"/billing/v1/accounts/{bob['billing_account_id']}/certification",
               headers=bob_session, json={**CERT, "taxpayer_id": "91310000MA1FL0XX2X"})
    refused = client.post(move, json={"to_username": "bob"}, headers=ada_session)
    assert refused.json()["error"]["code"] == "certification_mismatch"

    carol = register(client, "carol")
    client.put(f"/billing/v1/accounts/{carol['billing_account_id']}/certification",
               headers=billing_login(client, "carol"), json=CERT)
    not_mine = client.post(f"/billing/v1/accounts/{ada['billing_account_id']}/workspaces/"
                           f"{carol['workspace_id']}/move", json={"to_username": "ada"},
                           headers=ada_session)
    assert (not_mine.status_code, not_mine.json()["error"]["code"]) == (404, "workspace_not_found")
    moved = client.post(move, json={"to_username": "carol"}, headers=ada_session)
    assert moved.status_code == 200, moved.text
    assert moved.json()["effective_from"] == "2026-11-27"

    # Today's usage is still Ada's; tomorrow's is Carol's.
    send_usage(client, ada["ingest_key"], [
        {"id": "today", "workspace_id": ada["workspace_id"], "item": "logs", "retention_days": 3,
         "time": START.isoformat(), "quantity": "1000000"}])
    clock.set(START + timedelta(days=1))
    send_usage(client, ada["ingest_key"], [
        {"id": "tomorrow", "workspace_id": ada["workspace_id"], "item": "logs", "retention_days": 3,
         "time": (START + timedelta(days=1)).isoformat(), "quantity": "2000000"}])
    clock.set(START + timedelta(days=2))
    close_day(client, "2026-11-26")
    close_day(client, "2026-11-27")
    arrears = {name: client.get(f"/billing/v1/accounts/{reg['billing_account_id']}/overview",
                                headers=OPERATOR).json()["arrears"]
               for name, reg in (("ada", ada), ("carol", carol))}
    assert arrears == {"ada": "1.00", "carol": "2.00"}


@pytest.mark.db
def test_bind_workspace_from_the_billing_center(mail_runtime: tuple[Runtime, Inbox],
                                                clock: ManualClock) -> None:
    runtime, inbox = mail_runtime
    with TestClient(runtime.app) as client:
        register(client)
        owner = console_login(client)
        free = client.post("/console/v1/workspaces", json={"name": "Lab"}, headers=owner).json()
        register(client, "payer")
        payer = billing_login(client, "payer")
        account = client.post("/billing/v1/sessions", json={
            "username": "payer", "password": "correct horse battery"}).json()["account_id"]
        asked = client.post(f"/billing/v1/accounts/{account}/workspace-bindings",
                            json={"workspace_id": free["workspace_id"]}, headers=payer)
        assert asked.status_code == 200, asked.text
        (body,) = inbox.bodies_to("ada@example.com")  # the workspace owner gets the code
        code = re.search(r"(\d{6})", body).group(1)  # type: ignore[union-attr]
        done = client.post(f"/billing/v1/accounts/{account}/workspace-bindings/confirm",
                           json={"workspace_id": free["workspace_id"], "code": code}, headers=payer)
        assert done.status_code == 200, done.text
        ws = client.get(f"/console/v1/workspaces/{free['workspace_id']}", headers=owner).json()
        assert ws["plan"] == "commercial" and ws["billing_account_id"] == account
        again = client.post(f"/billing/v1/accounts/{account}/workspace-bindings",
                            json={"workspace_id": free["workspace_id"]}, headers=payer)
        assert (again.status_code, again.json()["error"]["code"]) == (422, "already_bound")
